/*
 * x86_entry.c - initial vCPU state for the 64-bit Linux boot protocol and
 * for the PVH entry.
 */
#include "vmm/x86_entry.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "vmm/layout.h"

#define X86_CR0_PE (1ull << 0)
#define X86_CR0_ET (1ull << 4)
#define X86_CR0_NE (1ull << 5)
#define X86_CR0_PG (1ull << 31)
#define X86_CR4_PAE (1ull << 5)
#define X86_EFER_LME (1ull << 8)
#define X86_EFER_LMA (1ull << 10)
#define X86_RFLAGS_RESERVED (1ull << 1) /* always 1 */

#define PTE_PRESENT (1ull << 0)
#define PTE_WRITABLE (1ull << 1)
#define PTE_LARGE (1ull << 7)           /* 2 MiB page in a PD entry */
#define PAGE_SIZE 0x1000
#define PT_ENTRIES 512
#define LARGE_PAGE_SIZE (1ull << 21)
#define PD_PAGES (IDENTITY_MAP_END / LARGE_PAGE_SIZE / PT_ENTRIES)

static_assert(PD_PAGES == 4, "layout.h gives PD_GPA four pages");
static_assert(PD_PAGES <= PT_ENTRIES, "one PDPT is enough");

/*
 * Descriptor flags as in the GDT's access byte (bits 0-7) and flags nibble
 * (bits 12-15): type, S, DPL, P / AVL, L, D/B, G. Types have the accessed
 * bit set so the CPU never writes the GDT.
 */
#define SEG_CODE64 0xa09b               /* G, L, P, S, execute/read */
#define SEG_CODE32 0xc09b               /* G, D, P, S, execute/read */
#define SEG_DATA 0xc093                 /* G, B, P, S, read/write */
#define SEG_TSS 0x008b                  /* P, busy TSS */
#define SEG_FLAT_LIMIT 0xfffff          /* in 4 KiB units: 4 GiB */
#define SEG_TSS_LIMIT 0x67              /* the PVH ABI's; bytes */

enum gdt_index {
	GDT_CODE = X86_ENTRY_CS_SELECTOR / 8,
	GDT_DATA = X86_ENTRY_DS_SELECTOR / 8,
	GDT_TSS = X86_ENTRY_TSS_SELECTOR / 8,
	GDT_ENTRIES = GDT_TSS + 2,      /* a long-mode TSS takes two */
};

static uint64_t gdt_descriptor(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) |
	       ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0xf0000) << 32) |
	       ((uint64_t)(base & 0x00ffffff) << 16) |
	       (limit & 0xffff);
}

/* The segment-register cache a load of that descriptor would produce. */
static struct kvm_segment kvm_segment_of(uint16_t selector, uint16_t flags,
					 uint32_t base, uint32_t limit)
{
	bool granular = flags & (1 << 15);

	return (struct kvm_segment){
		.base = base,
		.limit = granular ? (limit << 12) | 0xfff : limit,
		.selector = selector,
		.type = flags & 0xf,
		.s = (flags >> 4) & 1,
		.dpl = (flags >> 5) & 3,
		.present = (flags >> 7) & 1,
		.avl = (flags >> 12) & 1,
		.l = (flags >> 13) & 1,
		.db = (flags >> 14) & 1,
		.g = granular,
	};
}

static int write_gdt(const struct guest_mem *mem, uint16_t code_flags)
{
	uint64_t gdt[GDT_ENTRIES] = { 0 };

	gdt[GDT_CODE] = gdt_descriptor(code_flags, 0, SEG_FLAT_LIMIT);
	gdt[GDT_DATA] = gdt_descriptor(SEG_DATA, 0, SEG_FLAT_LIMIT);
	/* The upper half (base bits 32-63) stays 0. */
	gdt[GDT_TSS] = gdt_descriptor(SEG_TSS, 0, SEG_TSS_LIMIT);
	return guest_mem_write(mem, GDT_GPA, gdt, sizeof(gdt));
}

/* PML4[0] -> PDPT, PDPT[0..3] -> the PDs, each PD entry a 2 MiB page. */
static int write_identity_page_tables(const struct guest_mem *mem)
{
	uint64_t pml4[PT_ENTRIES] = { 0 }, pdpt[PT_ENTRIES] = { 0 };
	uint64_t pd[PD_PAGES * PT_ENTRIES];

	pml4[0] = PDPT_GPA | PTE_PRESENT | PTE_WRITABLE;
	for (unsigned int i = 0; i < PD_PAGES; i++)
		pdpt[i] = (PD_GPA + i * PAGE_SIZE) | PTE_PRESENT | PTE_WRITABLE;
	for (unsigned int i = 0; i < PD_PAGES * PT_ENTRIES; i++)
		pd[i] = (i * LARGE_PAGE_SIZE) | PTE_PRESENT | PTE_WRITABLE |
			PTE_LARGE;
	if (guest_mem_write(mem, PML4_GPA, pml4, sizeof(pml4)) ||
	    guest_mem_write(mem, PDPT_GPA, pdpt, sizeof(pdpt)) ||
	    guest_mem_write(mem, PD_GPA, pd, sizeof(pd)))
		return -EFAULT;
	return 0;
}

static void load_segments(struct kvm_sregs *sregs, uint16_t code_flags)
{
	struct kvm_segment data = kvm_segment_of(X86_ENTRY_DS_SELECTOR,
						 SEG_DATA, 0, SEG_FLAT_LIMIT);

	sregs->gdt.base = GDT_GPA;
	sregs->gdt.limit = GDT_ENTRIES * sizeof(uint64_t) - 1;
	sregs->cs = kvm_segment_of(X86_ENTRY_CS_SELECTOR, code_flags, 0,
				   SEG_FLAT_LIMIT);
	sregs->ds = data;
	sregs->es = data;
	sregs->fs = data;
	sregs->gs = data;
	sregs->ss = data;
	sregs->tr = kvm_segment_of(X86_ENTRY_TSS_SELECTOR, SEG_TSS, 0,
				   SEG_TSS_LIMIT);
}

int x86_entry_setup(const struct guest_mem *mem, const struct boot_entry *entry,
		    struct kvm_sregs *sregs, struct kvm_regs *regs)
{
	uint16_t code_flags;

	switch (entry->mode) {
	case BOOT_ENTRY_64BIT:
		code_flags = SEG_CODE64;
		if (entry->rip >= IDENTITY_MAP_END)
			return -EINVAL;
		if (write_identity_page_tables(mem))
			return -EFAULT;
		sregs->cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
		sregs->cr3 = PML4_GPA;
		sregs->cr4 = X86_CR4_PAE;
		sregs->efer = X86_EFER_LME | X86_EFER_LMA;
		break;
	case BOOT_ENTRY_PVH:
		code_flags = SEG_CODE32;
		if (entry->rip > UINT32_MAX || entry->boot_info_gpa > UINT32_MAX)
			return -EINVAL;
		sregs->cr0 = X86_CR0_PE | X86_CR0_ET;
		sregs->cr3 = 0;
		sregs->cr4 = 0;
		sregs->efer = 0;
		break;
	default:
		return -EINVAL;
	}
	if (write_gdt(mem, code_flags))
		return -EFAULT;
	load_segments(sregs, code_flags);

	memset(regs, 0, sizeof(*regs));
	regs->rflags = X86_RFLAGS_RESERVED;
	regs->rip = entry->rip;
	if (entry->mode == BOOT_ENTRY_64BIT)
		regs->rsi = entry->boot_info_gpa;
	else
		regs->rbx = entry->boot_info_gpa;
	return 0;
}
