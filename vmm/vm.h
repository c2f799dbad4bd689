/*
 * vm.h - one KVM virtual machine: guest RAM, the in-kernel interrupt
 * controllers and PIT, one vCPU, and the two buses its exits go to.
 *
 * Set-up failures return a negative errno and leave a message naming the
 * failing call in the caller's buffer; nothing here exits the process.
 */
#ifndef EROVM_VM_H
#define EROVM_VM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/guest_mem.h"

/* Why the vCPU loop ended; written by devices on the vCPU thread. */
enum vm_stop_reason {
	VM_RUNNING = 0,
	VM_STOP_RESET,          /* i8042 reset, triple fault, KVM reset event */
	VM_STOP_SHUTDOWN,       /* KVM shutdown event */
	VM_STOP_HALTED,         /* halted with interrupts off: a power-off */
	VM_STOP_ERROR,          /* an exit the monitor cannot handle */
};

/* Exit reasons counted per VM; others land in the last slot. */
#define VM_EXIT_COUNTERS 40

struct vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;

	struct guest_mem mem;
	void *ram;              /* one mapping; low part, then high part */
	size_t ram_size;
	uint64_t ram_low_size;  /* bytes at guest-physical 0 */

	struct bus pio;
	struct bus mmio;

	enum vm_stop_reason stop;
	uint64_t exits[VM_EXIT_COUNTERS];
};

/*
 * Creates the VM with @ram_size bytes of anonymous memory (2 MiB huge pages
 * if @hugepages), TSS and identity-map pages, IOAPIC+PIC+LAPIC and PIT, and
 * one vCPU with CPUID, MSRs, FPU and LAPIC set for a Linux guest.
 */
int vm_create(struct vm *vm, uint64_t ram_size, bool hugepages, char *err,
	      size_t err_size);

/* Releases everything vm_create() made. Safe on a zeroed or partial vm. */
void vm_destroy(struct vm *vm);

/* Drives interrupt line @irq of the in-kernel PIC/IOAPIC (level style). */
int vm_irq_line(struct vm *vm, unsigned int irq, bool level);

/* Routes guest writes of @datamatch to [addr, addr+len) into @fd (KVM_IOEVENTFD). */
int vm_add_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len,
		     uint64_t datamatch, int fd);

/* Writes to eventfd @fd raise GSI @gsi (KVM_IRQFD). */
int vm_add_irqfd(struct vm *vm, unsigned int gsi, int fd);

/* Loads the initial registers (KVM_SET_SREGS / KVM_SET_REGS). */
int vm_set_vcpu_state(struct vm *vm, const struct kvm_sregs *sregs,
		      const struct kvm_regs *regs, char *err, size_t err_size);
int vm_get_sregs(struct vm *vm, struct kvm_sregs *sregs);

/*
 * Handles one exit described by @run: port and MMIO accesses go to the
 * buses (a port exit may carry io.count > 1 items), shutdown and reset
 * events stop the VM. Returns the stop reason, VM_RUNNING to go on.
 * A pure function of @run and the buses, so tests can feed it exits.
 */
enum vm_stop_reason vm_handle_exit(struct vm *vm, struct kvm_run *run,
				   char *err, size_t err_size);

/*
 * Runs the vCPU on the calling thread until the VM stops. @on_first_run,
 * if set, is called just before the first KVM_RUN. A timer sends SIGUSR1
 * to this thread to notice a guest that halted for good (VM_STOP_HALTED).
 * Returns the stop reason; for
 * VM_STOP_ERROR the reason, exit and guest rip are in @err.
 */
enum vm_stop_reason vm_run(struct vm *vm, void (*on_first_run)(void *),
			   void *opaque, char *err, size_t err_size);

#endif
