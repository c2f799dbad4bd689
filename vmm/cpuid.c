/*
 * cpuid.c - per-vCPU CPUID: APIC ids and a one-thread-per-package topology.
 * Field layouts from the Intel SDM (CPUID) and AMD's APM volume 3.
 */
#include "vmm/cpuid.h"

#define CPUID_1_EBX_KEEP 0x0000ffffu          /* brand index, CLFLUSH size */
#define CPUID_1_EBX_LOGICAL_SHIFT 16          /* addressable logical ids */
#define CPUID_1_EBX_APIC_ID_SHIFT 24
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)
#define CPUID_CACHE_SHARING_MASK (0xfffu << 14) /* leaves 4, 0x8000001D */
#define CPUID_4_EAX_CORES_MASK (0x3fu << 26)
#define CPUID_80000008_ECX_CORES_MASK 0xf0ffu   /* NC, ApicIdSize */

void cpuid_fit_vcpu(struct kvm_cpuid_entry2 *entries, unsigned int nent,
		    uint32_t apic_id)
{
	for (unsigned int i = 0; i < nent; i++) {
		struct kvm_cpuid_entry2 *e = &entries[i];

		switch (e->function) {
		case 0x1:
			e->ebx = (e->ebx & CPUID_1_EBX_KEEP) |
				 apic_id << CPUID_1_EBX_APIC_ID_SHIFT |
				 1u << CPUID_1_EBX_LOGICAL_SHIFT;
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
			e->edx &= ~CPUID_1_EDX_HTT;
			break;
		case 0x4:
			e->eax &= ~(CPUID_4_EAX_CORES_MASK | CPUID_CACHE_SHARING_MASK);
			break;
		case 0xb:
		case 0x1f:
			/* Level type 0 in every subleaf: no topology levels. */
			e->eax = e->ebx = 0;
			e->ecx = e->index & 0xff;
			e->edx = apic_id;
			break;
		case 0x80000008:
			e->ecx &= ~CPUID_80000008_ECX_CORES_MASK;
			break;
		case 0x8000001d:
			e->eax &= ~CPUID_CACHE_SHARING_MASK;
			break;
		case 0x8000001e:
			e->eax = apic_id;
			e->ebx = 0;     /* core 0, one thread per core */
			e->ecx = 0;     /* node 0, one node per package */
			break;
		}
	}
}
