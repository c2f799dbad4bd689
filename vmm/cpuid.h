/*
 * cpuid.h - what a vCPU's CPUID says about the processor it is: KVM's
 * supported leaves (KVM_GET_SUPPORTED_CPUID), patched per vCPU.
 *
 * Topology: vCPU n has local APIC id n (KVM gives vCPU id n that APIC id)
 * and is a package of its own: one core, one thread, caches it shares with
 * nobody. That is the one topology the leaves can state without entries
 * KVM did not return (leaf 0xB would need a core level subleaf), and every
 * leaf Linux reads it from agrees, so the host's topology never leaks in
 * half-way: leaf 1 (APIC id, one logical processor, no HTT), leaf 4 and
 * 0x8000001D (one core, caches not shared), 0xB and 0x1F (no levels, but
 * the x2APIC id in EDX of every subleaf), 0x80000008 (one core) and
 * 0x8000001E (extended APIC id, one thread, one node). Leaf 1 also sets
 * the hypervisor bit, so the guest uses the KVM clock and paravirt
 * features of the 0x40000000 leaves.
 *
 * Pure: touches nothing but @entries, so tests feed it fabricated leaves.
 */
#ifndef EROVM_CPUID_H
#define EROVM_CPUID_H

#include <linux/kvm.h>
#include <stdint.h>

/* Patches @entries (all of KVM's leaves) for the vCPU with @apic_id. */
void cpuid_fit_vcpu(struct kvm_cpuid_entry2 *entries, unsigned int nent,
		    uint32_t apic_id);

#endif
