/*
 * x86_entry.h - the boot vCPU's initial register state for a boot_entry.
 *
 * BOOT_ENTRY_64BIT (Linux 64-bit boot protocol): long mode with paging,
 * identity page tables at PML4_GPA/PDPT_GPA/PD_GPA mapping the first
 * IDENTITY_MAP_END bytes with 2 MiB pages, flat __BOOT_CS (0x10, 64-bit
 * code) and __BOOT_DS (0x18), rsi = zero page.
 *
 * BOOT_ENTRY_PVH (Xen PVH ABI): 32-bit protected mode, paging off, CR4 and
 * EFER clear, flat 4 GiB code (0x10) and data (0x18) segments, TR a busy
 * TSS with base 0 and limit 0x67, ebx = hvm_start_info.
 *
 * Both get a GDT at GDT_GPA holding the descriptors the segment registers
 * were loaded from (null, null, code, data, TSS), and rflags = 2 (IF off).
 */
#ifndef EROVM_X86_ENTRY_H
#define EROVM_X86_ENTRY_H

#include <linux/kvm.h>

#include "vmm/boot.h"
#include "vmm/guest_mem.h"

#define X86_ENTRY_CS_SELECTOR 0x10  /* __BOOT_CS */
#define X86_ENTRY_DS_SELECTOR 0x18  /* __BOOT_DS */
#define X86_ENTRY_TSS_SELECTOR 0x20

/*
 * Writes the GDT (and for BOOT_ENTRY_64BIT the page tables) into @mem,
 * changes the control registers, EFER, GDT and segment registers of
 * @sregs (the caller's KVM_GET_SREGS result; other fields stay as they
 * are) and sets all of @regs. Returns 0, -EINVAL for an unknown mode or an
 * entry the mode cannot reach (above 4 GiB), or -EFAULT if guest RAM does
 * not cover the structures of layout.h.
 */
int x86_entry_setup(const struct guest_mem *mem, const struct boot_entry *entry,
		    struct kvm_sregs *sregs, struct kvm_regs *regs);

#endif
