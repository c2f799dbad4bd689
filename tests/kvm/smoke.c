/*
 * KVM smoke test: proves that /dev/kvm works where erovm's guest tests run.
 *
 * It creates a VM with one vCPU and 4 KiB of RAM at guest-physical 0, runs
 * a few real-mode instructions, and checks each exit the monitor will rely
 * on: two port writes, an MMIO write to an address no memory slot covers,
 * and HLT. Prints one line and exits 0 on success, 1 on any mismatch.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "kvm-smoke: %s:%d: %s failed: ",        \
				__FILE__, __LINE__, #cond);                     \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			exit(1);                                                \
		}                                                               \
	} while (0)

#define RAM_SIZE 0x1000
#define CODE_GPA 0x0
#define PORT 0x10
#define MMIO_GPA 0x2000 /* outside RAM: must exit as MMIO */

static const uint8_t guest_code[] = {
	0xb0, 0x2a,                   /* mov al, 0x2a          */
	0xe6, PORT,                   /* out PORT, al          */
	0xfe, 0xc0,                   /* inc al                */
	0xe6, PORT,                   /* out PORT, al          */
	0xc6, 0x06, 0x00, 0x20, 0x5a, /* mov byte [0x2000], 0x5a */
	0xf4,                         /* hlt                   */
};

static const char *exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_IO: return "IO";
	case KVM_EXIT_MMIO: return "MMIO";
	case KVM_EXIT_HLT: return "HLT";
	case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
	case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
	default: return "other";
	}
}

static void run_until_exit(int vcpu, struct kvm_run *run, uint32_t want)
{
	CHECK(ioctl(vcpu, KVM_RUN, 0) == 0, "KVM_RUN: %s", strerror(errno));
	CHECK(run->exit_reason == want, "exit %u (%s), wanted %u (%s)",
	      run->exit_reason, exit_name(run->exit_reason), want, exit_name(want));
}

static void expect_port_write(int vcpu, struct kvm_run *run, uint8_t value)
{
	const uint8_t *data;

	run_until_exit(vcpu, run, KVM_EXIT_IO);
	CHECK(run->io.direction == KVM_EXIT_IO_OUT, "direction %u", run->io.direction);
	CHECK(run->io.port == PORT, "port 0x%x", run->io.port);
	CHECK(run->io.size == 1 && run->io.count == 1, "size %u count %u",
	      run->io.size, run->io.count);
	data = (const uint8_t *)run + run->io.data_offset;
	CHECK(*data == value, "wrote 0x%x, wanted 0x%x", *data, value);
}

int main(void)
{
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	int kvm, vm, vcpu, run_size;
	uint8_t *ram;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	CHECK(kvm >= 0, "open /dev/kvm: %s", strerror(errno));
	CHECK(ioctl(kvm, KVM_GET_API_VERSION, 0) == KVM_API_VERSION, "API version");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	CHECK(vm >= 0, "KVM_CREATE_VM: %s", strerror(errno));

	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ram != MAP_FAILED, "mmap: %s", strerror(errno));
	memcpy(ram + CODE_GPA, guest_code, sizeof(guest_code));
	region = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE,
		.userspace_addr = (uintptr_t)ram,
	};
	CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) == 0,
	      "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));

	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	CHECK(vcpu >= 0, "KVM_CREATE_VCPU: %s", strerror(errno));
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	CHECK(run_size >= (int)sizeof(*run), "KVM_GET_VCPU_MMAP_SIZE: %d", run_size);
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	CHECK(run != MAP_FAILED, "mmap kvm_run: %s", strerror(errno));

	/* Real mode, flat: CS base 0, execution starts at CODE_GPA. */
	CHECK(ioctl(vcpu, KVM_GET_SREGS, &sregs) == 0, "KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = 0;
	sregs.ds.selector = 0;
	CHECK(ioctl(vcpu, KVM_SET_SREGS, &sregs) == 0, "KVM_SET_SREGS");
	regs = (struct kvm_regs){ .rip = CODE_GPA, .rflags = 0x2 };
	CHECK(ioctl(vcpu, KVM_SET_REGS, &regs) == 0, "KVM_SET_REGS");

	expect_port_write(vcpu, run, 0x2a);
	expect_port_write(vcpu, run, 0x2b);
	run_until_exit(vcpu, run, KVM_EXIT_MMIO);
	CHECK(run->mmio.is_write && run->mmio.phys_addr == MMIO_GPA &&
	      run->mmio.len == 1 && run->mmio.data[0] == 0x5a,
	      "MMIO write=%u addr=0x%llx len=%u data=0x%x", run->mmio.is_write,
	      (unsigned long long)run->mmio.phys_addr, run->mmio.len,
	      run->mmio.data[0]);
	run_until_exit(vcpu, run, KVM_EXIT_HLT);
	CHECK(ioctl(vcpu, KVM_GET_REGS, &regs) == 0, "KVM_GET_REGS");
	CHECK(regs.rip == CODE_GPA + sizeof(guest_code), "rip 0x%llx after HLT",
	      (unsigned long long)regs.rip);

	printf("kvm-smoke: ok: port, MMIO and HLT exits as expected\n");
	return 0;
}
