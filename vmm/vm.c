#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmm/cpuid.h"
#include "vmm/layout.h"

/* Above the MMIO devices and below 4 GiB; KVM needs 3 pages for the TSS
 * (Intel, real-mode emulation) and one for the EPT identity map. */
#define TSS_GPA 0xfffbd000ull
#define IDENTITY_MAP_GPA 0xfffbc000ull

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_TSC 0x10
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_IA32_MISC_ENABLE_FAST_STRING 1
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MTRR_ENABLE (1u << 11)
#define MTRR_TYPE_WRBACK 6
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

/* LAPIC register offsets and the delivery modes Linux expects on LINT0/1. */
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

static int fail(char *err, size_t err_size, int error, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < err_size && error)
		snprintf(err + n, err_size - n, ": %s", strerror(error));
	return -(error ? error : EINVAL);
}

static int map_ram(struct vm *vm, uint64_t ram_size, bool hugepages,
		   char *err, size_t err_size)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	uint64_t high_size;

	if (ram_size < (16 << 20) || ram_size % (2 << 20))
		return fail(err, err_size, 0,
			    "guest memory must be a multiple of 2 MiB, at least 16 MiB");
	if (hugepages)
		flags |= MAP_HUGETLB;
	vm->ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		return fail(err, err_size, errno, "cannot map %llu MiB of guest memory%s",
			    (unsigned long long)(ram_size >> 20),
			    hugepages ? " in huge pages (see /proc/sys/vm/nr_hugepages)" : "");
	}
	vm->ram_size = ram_size;
	vm->ram_low_size = ram_size < RAM_LOW_MAX ? ram_size : RAM_LOW_MAX;
	high_size = ram_size - vm->ram_low_size;

	struct kvm_userspace_memory_region low = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = vm->ram_low_size,
		.userspace_addr = (uintptr_t)vm->ram,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0)
		return fail(err, err_size, errno, "KVM_SET_USER_MEMORY_REGION (low RAM)");
	if (guest_mem_add_region(&vm->mem, 0, vm->ram_low_size, vm->ram))
		return fail(err, err_size, 0, "guest memory table refused low RAM");
	if (high_size) {
		uint8_t *host = (uint8_t *)vm->ram + vm->ram_low_size;
		struct kvm_userspace_memory_region high = {
			.slot = 1, .guest_phys_addr = RAM_HIGH_GPA,
			.memory_size = high_size, .userspace_addr = (uintptr_t)host,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0)
			return fail(err, err_size, errno, "KVM_SET_USER_MEMORY_REGION (high RAM)");
		if (guest_mem_add_region(&vm->mem, RAM_HIGH_GPA, high_size, host))
			return fail(err, err_size, 0, "guest memory table refused high RAM");
	}
	return 0;
}

/* KVM's supported CPUID leaves; the kernel says E2BIG until all fit. */
static struct kvm_cpuid2 *supported_cpuid(struct vm *vm, char *err,
					  size_t err_size)
{
	struct kvm_cpuid2 *cpuid = NULL;
	unsigned int nent = 64;

	for (;;) {
		free(cpuid);
		cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(cpuid->entries[0]));
		if (!cpuid) {
			fail(err, err_size, ENOMEM, "CPUID table");
			return NULL;
		}
		cpuid->nent = nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
			return cpuid;
		if (errno != E2BIG || nent >= 1024) {
			fail(err, err_size, errno, "KVM_GET_SUPPORTED_CPUID");
			free(cpuid);
			return NULL;
		}
		nent *= 2;
	}
}

static int setup_msrs(int vcpu_fd, char *err, size_t err_size)
{
	static const struct kvm_msr_entry boot_msrs[] = {
		{ .index = MSR_IA32_SYSENTER_CS },
		{ .index = MSR_IA32_SYSENTER_ESP },
		{ .index = MSR_IA32_SYSENTER_EIP },
		{ .index = MSR_STAR },
		{ .index = MSR_CSTAR },
		{ .index = MSR_KERNEL_GS_BASE },
		{ .index = MSR_SYSCALL_MASK },
		{ .index = MSR_LSTAR },
		{ .index = MSR_IA32_TSC },
		{ .index = MSR_IA32_MISC_ENABLE, .data = MSR_IA32_MISC_ENABLE_FAST_STRING },
		/* Without firmware nobody programs the MTRRs: make all RAM write-back. */
		{ .index = MSR_MTRR_DEF_TYPE, .data = MTRR_ENABLE | MTRR_TYPE_WRBACK },
	};
	const unsigned int n = sizeof(boot_msrs) / sizeof(boot_msrs[0]);
	struct {
		struct kvm_msrs header;
		struct kvm_msr_entry entries[sizeof(boot_msrs) / sizeof(boot_msrs[0])];
	} msrs = { .header.nmsrs = n };
	int set;

	memcpy(msrs.entries, boot_msrs, sizeof(boot_msrs));
	set = ioctl(vcpu_fd, KVM_SET_MSRS, &msrs);
	if (set < 0)
		return fail(err, err_size, errno, "KVM_SET_MSRS");
	if ((unsigned int)set != n)
		return fail(err, err_size, 0, "KVM_SET_MSRS refused MSR 0x%x",
			    boot_msrs[set].index);
	return 0;
}

static int setup_fpu_and_lapic(int vcpu_fd, char *err, size_t err_size)
{
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	struct kvm_lapic_state lapic;
	uint32_t lvt;

	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return fail(err, err_size, errno, "KVM_SET_FPU");
	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
		return fail(err, err_size, errno, "KVM_GET_LAPIC");
	/* What firmware would do: PIC interrupts arrive as ExtINT on LINT0,
	 * NMIs on LINT1, until the kernel switches to the IOAPIC. The MP
	 * table says so for every local APIC; an AP's INIT resets them. */
	memcpy(&lvt, &lapic.regs[APIC_LVT_LINT0], sizeof(lvt));
	lvt = (lvt & ~0x700u) | (APIC_MODE_EXTINT << 8);
	memcpy(&lapic.regs[APIC_LVT_LINT0], &lvt, sizeof(lvt));
	memcpy(&lvt, &lapic.regs[APIC_LVT_LINT1], sizeof(lvt));
	lvt = (lvt & ~0x700u) | (APIC_MODE_NMI << 8);
	memcpy(&lapic.regs[APIC_LVT_LINT1], &lvt, sizeof(lvt));
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
		return fail(err, err_size, errno, "KVM_SET_LAPIC");
	return 0;
}

/*
 * vCPU @id (its APIC id too). With the in-kernel irqchip KVM makes vCPU 0
 * runnable and leaves the others in KVM_MP_STATE_UNINITIALIZED, where
 * KVM_RUN waits for the guest's INIT and startup IPIs: only vCPU 0 gets
 * boot registers (vm_set_vcpu_state).
 */
static int add_vcpu(struct vm *vm, struct kvm_cpuid2 *cpuid, unsigned int id,
		    char *err, size_t err_size)
{
	struct vm_vcpu *vcpu = &vm->vcpus[id];
	int ret;

	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0)
		return fail(err, err_size, errno, "KVM_CREATE_VCPU %u", id);
	vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		int error = errno;

		close(vcpu->fd);
		return fail(err, err_size, error, "mmap of vCPU %u's kvm_run", id);
	}
	vm->nr_vcpus++;

	cpuid_fit_vcpu(cpuid->entries, cpuid->nent, id);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0)
		return fail(err, err_size, errno, "KVM_SET_CPUID2");
	ret = setup_msrs(vcpu->fd, err, err_size);
	if (!ret)
		ret = setup_fpu_and_lapic(vcpu->fd, err, err_size);
	return ret;
}

int vm_create(struct vm *vm, uint64_t ram_size, bool hugepages,
	      unsigned int nr_vcpus, char *err, size_t err_size)
{
	/* SPEAKER_DUMMY also gives port 0x61 (PIT channel 2 gate and OUT2),
	 * which Linux reads to calibrate the TSC. */
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t identity_map = IDENTITY_MAP_GPA;
	struct kvm_cpuid2 *cpuid;
	int mmap_size, ret;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	if (nr_vcpus == 0 || nr_vcpus > VM_MAX_VCPUS)
		return fail(err, err_size, 0, "a VM has 1 to %d vCPUs, not %u",
			    VM_MAX_VCPUS, nr_vcpus);

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return fail(err, err_size, errno, "cannot open /dev/kvm");
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return fail(err, err_size, 0, "/dev/kvm speaks an unknown KVM API version");
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return fail(err, err_size, errno, "KVM_CREATE_VM");
	ret = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (ret > 0 && (unsigned int)ret < nr_vcpus)
		return fail(err, err_size, 0, "this KVM runs at most %d vCPUs per VM", ret);
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_GPA) < 0)
		return fail(err, err_size, errno, "KVM_SET_TSS_ADDR");
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0)
		return fail(err, err_size, errno, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return fail(err, err_size, errno, "KVM_CREATE_IRQCHIP");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return fail(err, err_size, errno, "KVM_CREATE_PIT2");
	ret = map_ram(vm, ram_size, hugepages, err, err_size);
	if (ret)
		return ret;

	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < (int)sizeof(struct kvm_run))
		return fail(err, err_size, mmap_size < 0 ? errno : 0, "KVM_GET_VCPU_MMAP_SIZE");
	vm->run_size = mmap_size;
	cpuid = supported_cpuid(vm, err, err_size);
	if (!cpuid)
		return -EINVAL;
	for (unsigned int id = 0; id < nr_vcpus && !ret; id++)
		ret = add_vcpu(vm, cpuid, id, err, err_size);
	free(cpuid);
	return ret;
}

void vm_destroy(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		munmap(vm->vcpus[i].run, vm->run_size);
		close(vm->vcpus[i].fd);
	}
	vm->nr_vcpus = 0;
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->ram = NULL;
	vm->vm_fd = vm->kvm_fd = -1;
}

int vm_irq_line(struct vm *vm, unsigned int irq, bool level)
{
	struct kvm_irq_level line = { .irq = irq, .level = level };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &line) < 0 ? -errno : 0;
}

int vm_add_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len,
		     uint64_t datamatch, int fd)
{
	struct kvm_ioeventfd ioeventfd = {
		.datamatch = datamatch, .addr = addr, .len = len, .fd = fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
	};

	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &ioeventfd) < 0 ? -errno : 0;
}

int vm_add_irqfd(struct vm *vm, unsigned int gsi, int fd)
{
	struct kvm_irqfd irqfd = { .fd = fd, .gsi = gsi };

	return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int vm_get_sregs(struct vm *vm, struct kvm_sregs *sregs)
{
	return ioctl(vm->vcpus[0].fd, KVM_GET_SREGS, sregs) < 0 ? -errno : 0;
}

int vm_set_vcpu_state(struct vm *vm, const struct kvm_sregs *sregs,
		      const struct kvm_regs *regs, char *err, size_t err_size)
{
	if (ioctl(vm->vcpus[0].fd, KVM_SET_SREGS, sregs) < 0)
		return fail(err, err_size, errno, "KVM_SET_SREGS");
	if (ioctl(vm->vcpus[0].fd, KVM_SET_REGS, regs) < 0)
		return fail(err, err_size, errno, "KVM_SET_REGS");
	return 0;
}

static const char *exit_reason_name(uint32_t reason)
{
	static const char *const names[] = {
		[KVM_EXIT_UNKNOWN] = "UNKNOWN", [KVM_EXIT_EXCEPTION] = "EXCEPTION",
		[KVM_EXIT_IO] = "IO", [KVM_EXIT_HYPERCALL] = "HYPERCALL",
		[KVM_EXIT_DEBUG] = "DEBUG", [KVM_EXIT_HLT] = "HLT",
		[KVM_EXIT_MMIO] = "MMIO", [KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
		[KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY", [KVM_EXIT_INTR] = "INTR",
		[KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
		[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "unexpected";
}

enum vm_stop_reason vm_handle_exit(struct vm *vm, struct kvm_run *run,
				   char *err, size_t err_size)
{
	vm->exits[run->exit_reason < VM_EXIT_COUNTERS ? run->exit_reason
						       : VM_EXIT_COUNTERS - 1]++;
	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		/* The data area lies inside the kvm_run mapping: bound it
		 * before trusting count * size (string I/O batches items). */
		uint64_t bytes = (uint64_t)run->io.size * run->io.count;
		uint8_t *data = (uint8_t *)run + run->io.data_offset;

		if (run->io.data_offset > vm->run_size ||
		    bytes > vm->run_size - run->io.data_offset) {
			fail(err, err_size, 0, "port exit with data outside kvm_run");
			return VM_STOP_ERROR;
		}
		for (uint32_t i = 0; i < run->io.count; i++)
			bus_access(&vm->pio, run->io.port, data + (size_t)i * run->io.size,
				   run->io.size, run->io.direction == KVM_EXIT_IO_OUT);
		return vm->stop;
	}
	case KVM_EXIT_MMIO:
		if (run->mmio.len > sizeof(run->mmio.data)) {
			fail(err, err_size, 0, "MMIO exit of %u bytes", run->mmio.len);
			return VM_STOP_ERROR;
		}
		bus_access(&vm->mmio, run->mmio.phys_addr, run->mmio.data,
			   run->mmio.len, run->mmio.is_write);
		return vm->stop;
	case KVM_EXIT_INTR:
		return vm->stop;
	case KVM_EXIT_SHUTDOWN:
		return VM_STOP_TRIPLE_FAULT;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
			return VM_STOP_SHUTDOWN;
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			return VM_STOP_RESET;
		fail(err, err_size, 0, "unexpected system event %u",
		     run->system_event.type);
		return VM_STOP_ERROR;
	case KVM_EXIT_FAIL_ENTRY:
		fail(err, err_size, 0, "KVM could not enter the guest (hardware reason 0x%llx)",
		     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return VM_STOP_ERROR;
	case KVM_EXIT_INTERNAL_ERROR:
		fail(err, err_size, 0, "KVM internal error, suberror %u",
		     run->internal.suberror);
		return VM_STOP_ERROR;
	default:
		fail(err, err_size, 0, "unhandled exit %u (%s)", run->exit_reason,
		     exit_reason_name(run->exit_reason));
		return VM_STOP_ERROR;
	}
}

/*
 * Without ACPI a guest cannot power off: Linux stops the other CPUs, each
 * halting with interrupts disabled, then halts the boot CPU the same way,
 * inside the kernel's irqchip emulation where no exit reaches us. So each
 * vCPU is kicked out of KVM_RUN every so often and notes whether it is
 * parked: halted with interrupts off (nothing but an NMI, which nobody
 * sends, could wake it) or never started (waiting for INIT/SIPI). When
 * every vCPU is parked the guest has powered off. An idle guest halts with
 * interrupts on. A kick costs one exit per vCPU.
 */
#define HALT_CHECK_INTERVAL_MS 200
#define KICK_SIGNAL SIGUSR1
#define X86_EFLAGS_IF (1u << 9)
#define VCPU_ERR_MAX 512

/* vm_run()'s state, shared by its vCPU threads under `lock`. */
struct vm_runner {
	struct vm *vm;
	pthread_mutex_t lock;   /* exit handling, and all fields below */
	enum vm_stop_reason stop; /* the first reason, VM_RUNNING until then */
	char *err;              /* the first stop's message, if it has one */
	size_t err_size;
	unsigned int nr_threads; /* vCPUs 0..nr_threads-1 have a thread */
	struct vcpu_thread {
		struct vm_runner *runner;
		unsigned int id;
		pthread_t thread;
		bool parked;    /* at its last kick */
	} vcpus[VM_MAX_VCPUS];
	/* The signal mask inside KVM_RUN: the caller's, without the kick. */
	struct {
		struct kvm_signal_mask header;
		uint8_t mask[8];        /* the kernel's sigset_t */
	} run_mask;
};

static void ignore_kick(int sig)
{
	(void)sig;
}

static bool vcpu_parked(int vcpu_fd)
{
	struct kvm_mp_state mp_state;
	struct kvm_regs regs;

	if (ioctl(vcpu_fd, KVM_GET_MP_STATE, &mp_state) < 0)
		return false;
	if (mp_state.mp_state == KVM_MP_STATE_UNINITIALIZED ||
	    mp_state.mp_state == KVM_MP_STATE_INIT_RECEIVED)
		return true;
	if (mp_state.mp_state != KVM_MP_STATE_HALTED ||
	    ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return false;
	return !(regs.rflags & X86_EFLAGS_IF);
}

/*
 * Records the first stop reason (@msg: its message, for VM_STOP_ERROR and
 * VM_STOP_TRIPLE_FAULT) and kicks every vCPU thread out of KVM_RUN; a
 * kick that arrives outside KVM_RUN stays pending and ends the next one
 * at once. Lock held.
 */
static void stop_locked(struct vm_runner *r, enum vm_stop_reason stop,
			const char *msg)
{
	if (r->stop != VM_RUNNING)
		return;
	r->stop = stop;
	if (stop == VM_STOP_ERROR || stop == VM_STOP_TRIPLE_FAULT)
		snprintf(r->err, r->err_size, "%s", msg);
	for (unsigned int i = 0; i < r->nr_threads; i++) {
		if (!pthread_equal(r->vcpus[i].thread, pthread_self()))
			pthread_kill(r->vcpus[i].thread, KICK_SIGNAL);
	}
}

static void stop_with_error(struct vm_runner *r, const char *msg)
{
	pthread_mutex_lock(&r->lock);
	stop_locked(r, VM_STOP_ERROR, msg);
	pthread_mutex_unlock(&r->lock);
}

/* After a kick: is the VM stopping, or did the guest power off? */
static bool check_kicked(struct vcpu_thread *t, int vcpu_fd)
{
	struct vm_runner *r = t->runner;
	bool parked = vcpu_parked(vcpu_fd), all_parked = true, stopping;

	pthread_mutex_lock(&r->lock);
	t->parked = parked;
	for (unsigned int i = 0; i < r->vm->nr_vcpus; i++)
		all_parked = all_parked && r->vcpus[i].parked;
	if (all_parked)
		stop_locked(r, VM_STOP_HALTED, NULL);
	stopping = r->stop != VM_RUNNING;
	pthread_mutex_unlock(&r->lock);
	return stopping;
}

/* Where vCPU @id stands, for a triple fault's report. */
#define RESET_RIP 0xfff0
#define RESET_CS 0xf000

static void describe_vcpu(int vcpu_fd, unsigned int id, char *out, size_t size)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0 ||
	    ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(out, size, "vCPU %u (registers unreadable: %s)", id, strerror(errno));
		return;
	}
	/* KVM on AMD reinitialises the vCPU on a shutdown: nothing is left. */
	if (regs.rip == RESET_RIP && sregs.cs.selector == RESET_CS) {
		snprintf(out, size, "vCPU %u; this KVM kept none of its registers", id);
		return;
	}
	snprintf(out, size, "vCPU %u at rip 0x%llx, rsp 0x%llx, cr0 0x%llx, cr2 0x%llx, "
		 "cr3 0x%llx, cr4 0x%llx", id, (unsigned long long)regs.rip,
		 (unsigned long long)regs.rsp, (unsigned long long)sregs.cr0,
		 (unsigned long long)sregs.cr2, (unsigned long long)sregs.cr3,
		 (unsigned long long)sregs.cr4);
}

/* Handles an exit under the lock; true once the VM is stopping. */
static bool handle_exit(struct vcpu_thread *t, struct vm_vcpu *vcpu)
{
	struct vm_runner *r = t->runner;
	char msg[VCPU_ERR_MAX];
	enum vm_stop_reason stop;
	bool stopping;

	pthread_mutex_lock(&r->lock);
	stop = vm_handle_exit(r->vm, vcpu->run, msg, sizeof(msg));
	if (stop == VM_STOP_ERROR) {
		struct kvm_regs regs;
		size_t used = strlen(msg);

		if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) == 0 && used < sizeof(msg))
			snprintf(msg + used, sizeof(msg) - used,
				 " at guest rip 0x%llx on vCPU %u",
				 (unsigned long long)regs.rip, t->id);
	} else if (stop == VM_STOP_TRIPLE_FAULT) {
		describe_vcpu(vcpu->fd, t->id, msg, sizeof(msg));
	}
	if (stop != VM_RUNNING)
		stop_locked(r, stop, msg);
	stopping = r->stop != VM_RUNNING;
	pthread_mutex_unlock(&r->lock);
	return stopping;
}

/* Arms a timer that kicks the calling thread, which runs vCPU @fd. */
static int start_halt_checks(struct vm_runner *r, int vcpu_fd, timer_t *timer,
			     char *err, size_t err_size)
{
	struct sigevent event = {
		.sigev_notify = SIGEV_THREAD_ID,
		.sigev_signo = KICK_SIGNAL,
		._sigev_un._tid = gettid(),
	};
	struct itimerspec interval = {
		.it_interval.tv_nsec = HALT_CHECK_INTERVAL_MS * 1000000L,
		.it_value.tv_nsec = HALT_CHECK_INTERVAL_MS * 1000000L,
	};

	if (ioctl(vcpu_fd, KVM_SET_SIGNAL_MASK, &r->run_mask) < 0)
		return fail(err, err_size, errno, "KVM_SET_SIGNAL_MASK");
	if (timer_create(CLOCK_MONOTONIC, &event, timer) < 0)
		return fail(err, err_size, errno, "timer_create");
	if (timer_settime(*timer, 0, &interval, NULL) < 0) {
		timer_delete(*timer);
		return fail(err, err_size, errno, "timer_settime");
	}
	return 0;
}

static void run_vcpu(struct vcpu_thread *t)
{
	struct vm_vcpu *vcpu = &t->runner->vm->vcpus[t->id];
	const struct timespec no_wait = { 0 };
	char msg[VCPU_ERR_MAX];
	timer_t timer;
	sigset_t kick;

	if (start_halt_checks(t->runner, vcpu->fd, &timer, msg, sizeof(msg))) {
		stop_with_error(t->runner, msg);
		return;
	}
	sigemptyset(&kick);
	sigaddset(&kick, KICK_SIGNAL);
	for (;;) {
		if (ioctl(vcpu->fd, KVM_RUN, 0) == 0) {
			if (handle_exit(t, vcpu))
				break;
			continue;
		}
		if (errno != EINTR && errno != EAGAIN) {
			fail(msg, sizeof(msg), errno, "KVM_RUN on vCPU %u", t->id);
			stop_with_error(t->runner, msg);
			break;
		}
		/* The kick stays pending (blocked out here) until taken:
		 * left alone it would end every KVM_RUN at once. */
		sigtimedwait(&kick, NULL, &no_wait);
		if (check_kicked(t, vcpu->fd))
			break;
	}
	timer_delete(timer);
}

static void *vcpu_thread_main(void *opaque)
{
	run_vcpu(opaque);
	return NULL;
}

enum vm_stop_reason vm_run(struct vm *vm, void (*on_first_run)(void *),
			   void *opaque, char *err, size_t err_size)
{
	struct vm_runner runner, *r = &runner;
	struct sigaction action = { .sa_handler = ignore_kick };
	sigset_t blocked, during_run;
	bool started;
	int ret;

	*r = (struct vm_runner){ .vm = vm, .err = err, .err_size = err_size,
				 .run_mask.header.len = sizeof(r->run_mask.mask) };
	if (sigaction(KICK_SIGNAL, &action, NULL) < 0) {
		fail(err, err_size, errno, "sigaction");
		return VM_STOP_ERROR;
	}
	/* Blocked here, so in every vCPU thread, except inside KVM_RUN. */
	sigemptyset(&blocked);
	sigaddset(&blocked, KICK_SIGNAL);
	ret = pthread_sigmask(SIG_BLOCK, &blocked, &during_run);
	if (!ret)
		ret = pthread_mutex_init(&r->lock, NULL);
	if (ret) {
		fail(err, err_size, ret, "vCPU thread set-up");
		return VM_STOP_ERROR;
	}
	sigdelset(&during_run, KICK_SIGNAL);
	memcpy(r->run_mask.mask, &during_run, sizeof(r->run_mask.mask));

	if (on_first_run)
		on_first_run(opaque);
	pthread_mutex_lock(&r->lock);
	r->vcpus[0] = (struct vcpu_thread){ .runner = r, .thread = pthread_self() };
	r->nr_threads = 1;
	for (unsigned int id = 1; id < vm->nr_vcpus && r->stop == VM_RUNNING; id++) {
		struct vcpu_thread *t = &r->vcpus[id];

		*t = (struct vcpu_thread){ .runner = r, .id = id };
		ret = pthread_create(&t->thread, NULL, vcpu_thread_main, t);
		if (ret) {
			char msg[VCPU_ERR_MAX];

			fail(msg, sizeof(msg), ret, "cannot start the thread of vCPU %u", id);
			stop_locked(r, VM_STOP_ERROR, msg);
			break;
		}
		r->nr_threads++;
	}
	started = r->stop == VM_RUNNING;
	pthread_mutex_unlock(&r->lock);

	if (started)
		run_vcpu(&r->vcpus[0]);
	for (unsigned int i = 1; i < r->nr_threads; i++)
		pthread_join(r->vcpus[i].thread, NULL);
	pthread_mutex_destroy(&r->lock);
	/* A device may have written a later reason over it. */
	vm->stop = r->stop;
	return r->stop;
}
