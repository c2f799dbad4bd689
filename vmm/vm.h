/*
 * vm.h - one KVM virtual machine: guest RAM, the in-kernel interrupt
 * controllers and PIT, 1 to VM_MAX_VCPUS vCPUs, and the two buses their
 * exits go to.
 *
 * vCPU n has local APIC id n (vmm/cpuid.h, vmm/mptable.h); vCPU 0 is the
 * bootstrap processor and the only one given registers: the others wait
 * in KVM's in-kernel LAPIC for the guest's INIT and startup IPIs.
 *
 * Threads: vm_run() runs every vCPU on a thread of its own, vCPU 0 on the
 * caller's. Exits are handled one at a time, under a VM-wide lock: bus
 * handlers (and whatever they call, e.g. a reset callback setting
 * vm->stop) never run concurrently with each other, whichever vCPU exited.
 * A device's own I/O thread still synchronises with its bus handler
 * through the device's lock; the order is VM lock, then device lock.
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

/* Why the VM stopped; written by devices from their bus handlers. */
enum vm_stop_reason {
	VM_RUNNING = 0,
	VM_STOP_RESET,          /* i8042 reset, KVM reset event */
	VM_STOP_TRIPLE_FAULT,   /* KVM_EXIT_SHUTDOWN: Linux's last-resort reboot,
				 * or a guest that broke its own IDT or stack */
	VM_STOP_SHUTDOWN,       /* KVM shutdown event */
	VM_STOP_HALTED,         /* halted with interrupts off: a power-off */
	VM_STOP_ERROR,          /* an exit the monitor cannot handle */
};

/* Exit reasons counted per VM; others land in the last slot. */
#define VM_EXIT_COUNTERS 40

#define VM_MAX_VCPUS 64

struct vm_vcpu {
	int fd;
	struct kvm_run *run;    /* vm->run_size bytes */
};

struct vm {
	int kvm_fd;
	int vm_fd;
	struct vm_vcpu vcpus[VM_MAX_VCPUS];
	unsigned int nr_vcpus;  /* created so far */
	size_t run_size;

	struct guest_mem mem;
	void *ram;              /* one mapping; low part, then high part */
	size_t ram_size;
	uint64_t ram_low_size;  /* bytes at guest-physical 0 */

	struct bus pio;
	struct bus mmio;

	enum vm_stop_reason stop;       /* the first reason; under the lock */
	uint64_t exits[VM_EXIT_COUNTERS]; /* all vCPUs' exits; under the lock */
};

/*
 * Creates the VM with @ram_size bytes of anonymous memory (2 MiB huge pages
 * if @hugepages), TSS and identity-map pages, IOAPIC+PIC+LAPIC and PIT, and
 * @nr_vcpus (1..VM_MAX_VCPUS) vCPUs with CPUID, MSRs, FPU and LAPIC set for
 * a Linux guest.
 */
int vm_create(struct vm *vm, uint64_t ram_size, bool hugepages,
	      unsigned int nr_vcpus, char *err, size_t err_size);

/* Releases everything vm_create() made. Safe on a zeroed or partial vm. */
void vm_destroy(struct vm *vm);

/* Drives interrupt line @irq of the in-kernel PIC/IOAPIC (level style). */
int vm_irq_line(struct vm *vm, unsigned int irq, bool level);

/* Routes guest writes of @datamatch to [addr, addr+len) into @fd (KVM_IOEVENTFD). */
int vm_add_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len,
		     uint64_t datamatch, int fd);

/* Writes to eventfd @fd raise GSI @gsi (KVM_IRQFD). */
int vm_add_irqfd(struct vm *vm, unsigned int gsi, int fd);

/* The bootstrap processor's registers (KVM_SET_SREGS / KVM_SET_REGS). */
int vm_set_vcpu_state(struct vm *vm, const struct kvm_sregs *sregs,
		      const struct kvm_regs *regs, char *err, size_t err_size);
int vm_get_sregs(struct vm *vm, struct kvm_sregs *sregs);

/*
 * Handles one exit described by @run: port and MMIO accesses go to the
 * buses (a port exit may carry io.count > 1 items), shutdown and reset
 * events stop the VM. Returns the stop reason, VM_RUNNING to go on.
 * A pure function of @run and the buses, so tests can feed it exits;
 * vm_run() calls it with the VM lock held.
 */
enum vm_stop_reason vm_handle_exit(struct vm *vm, struct kvm_run *run,
				   char *err, size_t err_size);

/*
 * Runs the vCPUs until the VM stops: vCPU 0 on the calling thread, each
 * other one on a thread of its own, all joined before it returns.
 * @on_first_run, if set, is called just before the first KVM_RUN. The
 * first vCPU to stop the VM (reset, shutdown, error) kicks the others out
 * of KVM_RUN with SIGUSR1, which is blocked on every vCPU thread outside
 * KVM_RUN (so it stays pending until the next one). A timer kicks each
 * vCPU every 200 ms to notice a guest that powered off: every vCPU halted
 * with interrupts off or never started (VM_STOP_HALTED). Returns the
 * first stop reason; for VM_STOP_ERROR the reason, exit, guest rip and
 * vCPU are in @err, for VM_STOP_TRIPLE_FAULT the vCPU and its registers.
 */
enum vm_stop_reason vm_run(struct vm *vm, void (*on_first_run)(void *),
			   void *opaque, char *err, size_t err_size);

#endif
