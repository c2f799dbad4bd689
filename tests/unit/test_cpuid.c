/*
 * Unit tests for vmm/cpuid.c: host-like leaves (a 16-thread package with
 * shared caches) come out as one vCPU per package with its APIC id in
 * every place Linux reads one, and other leaves stay as KVM gave them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/cpuid.h"

enum {
	LEAF1, LEAF4_L1, LEAF4_L3, LEAF_B0, LEAF_B1, LEAF_1F2, LEAF_80000008,
	LEAF_8000001D, LEAF_8000001E, LEAF7, NR_LEAVES,
};

static void host_leaves(struct kvm_cpuid_entry2 *e)
{
	static const struct kvm_cpuid_entry2 host[NR_LEAVES] = {
		/* APIC id 0x0b, 16 logical ids, CLFLUSH 8, brand 0; HTT, SSE3. */
		[LEAF1] = { .function = 1, .eax = 0x906ea, .ebx = 0x0b100800,
			    .ecx = 0x1, .edx = 1u << 28 | 1 },
		/* L1d: 2 threads share it, 8 cores; L3: 16 threads share it. */
		[LEAF4_L1] = { .function = 4, .index = 0, .eax = 0x1c004121, .ebx = 0x01c0003f },
		[LEAF4_L3] = { .function = 4, .index = 3, .eax = 0x1c03c163, .ebx = 0x03c0003f },
		/* SMT level: shift 1, 2 threads; core level: shift 4, 16. */
		[LEAF_B0] = { .function = 0xb, .index = 0, .eax = 1, .ebx = 2,
			      .ecx = 0x100, .edx = 0x0b },
		[LEAF_B1] = { .function = 0xb, .index = 1, .eax = 4, .ebx = 16,
			      .ecx = 0x201, .edx = 0x0b },
		[LEAF_1F2] = { .function = 0x1f, .index = 2, .eax = 4, .ebx = 16,
			       .ecx = 0x302, .edx = 0x0b },
		/* 48-bit addresses; 16 cores (NC 15), ApicIdSize 4, PerfTsc bits. */
		[LEAF_80000008] = { .function = 0x80000008, .eax = 0x3030,
				    .ecx = 0x3400f },
		[LEAF_8000001D] = { .function = 0x8000001d, .index = 3,
				    .eax = 0x3c163, .ebx = 0x03c0003f },
		[LEAF_8000001E] = { .function = 0x8000001e, .eax = 0x0b,
				    .ebx = 0x0105, .ecx = 0x0300 },
		[LEAF7] = { .function = 7, .ebx = 0x029c67af, .edx = 0xbc000400 },
	};

	memcpy(e, host, sizeof(host));
}

static void check_vcpu(uint32_t apic_id)
{
	struct kvm_cpuid_entry2 e[NR_LEAVES], host[NR_LEAVES];

	host_leaves(host);
	host_leaves(e);
	cpuid_fit_vcpu(e, NR_LEAVES, apic_id);

	/* Leaf 1: the APIC id, one logical processor, no HTT, hypervisor. */
	assert_int_equal(e[LEAF1].ebx, apic_id << 24 | 1 << 16 | 0x0800);
	assert_int_equal(e[LEAF1].ecx, 0x1 | 1u << 31);
	assert_int_equal(e[LEAF1].edx, 1);
	assert_int_equal(e[LEAF1].eax, host[LEAF1].eax);

	/* Leaf 4: one core, caches not shared; the cache itself unchanged. */
	assert_int_equal(e[LEAF4_L1].eax, 0x121);
	assert_int_equal(e[LEAF4_L3].eax, 0x163);
	assert_int_equal(e[LEAF4_L3].ebx, host[LEAF4_L3].ebx);

	/* 0xB / 0x1F: no levels (type 0), the subleaf echoed, the x2APIC id. */
	for (int i = LEAF_B0; i <= LEAF_1F2; i++) {
		assert_int_equal(e[i].eax, 0);
		assert_int_equal(e[i].ebx, 0);
		assert_int_equal(e[i].ecx, e[i].index);
		assert_int_equal(e[i].edx, apic_id);
	}

	/* AMD: one core, cache not shared, extended APIC id, one thread and node. */
	assert_int_equal(e[LEAF_80000008].ecx, 0x30000);
	assert_int_equal(e[LEAF_80000008].eax, host[LEAF_80000008].eax);
	assert_int_equal(e[LEAF_8000001D].eax, 0x163);
	assert_int_equal(e[LEAF_8000001E].eax, apic_id);
	assert_int_equal(e[LEAF_8000001E].ebx, 0);
	assert_int_equal(e[LEAF_8000001E].ecx, 0);

	assert_memory_equal(&e[LEAF7], &host[LEAF7], sizeof(e[LEAF7]));
}

static void test_bootstrap_processor(void **state)
{
	(void)state;
	check_vcpu(0);
}

static void test_application_processors(void **state)
{
	(void)state;
	check_vcpu(1);
	check_vcpu(63);
}

/* vm.c patches one table for vCPU after vCPU: nothing of the last stays. */
static void test_patching_again_leaves_nothing_of_the_last(void **state)
{
	struct kvm_cpuid_entry2 again[NR_LEAVES], fresh[NR_LEAVES];

	(void)state;
	host_leaves(again);
	host_leaves(fresh);
	cpuid_fit_vcpu(again, NR_LEAVES, 63);
	cpuid_fit_vcpu(again, NR_LEAVES, 2);
	cpuid_fit_vcpu(fresh, NR_LEAVES, 2);
	assert_memory_equal(again, fresh, sizeof(again));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bootstrap_processor),
		cmocka_unit_test(test_application_processors),
		cmocka_unit_test(test_patching_again_leaves_nothing_of_the_last),
	};

	return cmocka_run_group_tests_name("cpuid", tests, NULL, NULL);
}
