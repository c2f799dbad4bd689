/*
 * mptable.h - the Intel MultiProcessor Specification 1.4 tables that tell
 * a kernel without ACPI where its CPUs and IOAPIC are.
 *
 * The floating pointer sits at EBDA_GPA (Linux scans 639-640 KiB for it)
 * and the configuration table right after it, inside the area the memory
 * map reserves up to 1 MiB (past 32 CPUs the table runs beyond 640 KiB:
 * only the pointer has to be where Linux scans). The table lists the CPUs (local APIC ids 0..ncpus-1, CPU 0
 * the bootstrap processor), one ISA bus, one IOAPIC (id ncpus, at
 * IOAPIC_GPA) with ISA IRQ n on its pin n, ExtINT on LINT0 and NMI on
 * LINT1 of every local APIC. Matches KVM's in-kernel irqchip, whose
 * default routing sends GSI n to IOAPIC pin n.
 */
#ifndef EROVM_MPTABLE_H
#define EROVM_MPTABLE_H

#include "vmm/guest_mem.h"

#define MPTABLE_MAX_CPUS 64
#define MPTABLE_ISA_IRQS 16

/*
 * Writes the MP floating pointer and configuration table for @ncpus CPUs
 * at EBDA_GPA. Returns 0, -EINVAL unless 1 <= @ncpus <= MPTABLE_MAX_CPUS,
 * or -EFAULT if guest RAM does not cover the area.
 */
int mptable_write(const struct guest_mem *mem, unsigned int ncpus);

#endif
