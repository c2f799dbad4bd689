/*
 * boot.h - loading a Linux guest kernel into guest RAM.
 *
 * The monitor boots the kernel directly, with no firmware. Two image
 * formats are accepted:
 *
 *   bzImage  Linux/x86 boot protocol >= 2.12 with XLF_KERNEL_64: the
 *            protected-mode kernel is loaded (at pref_address when it is
 *            relocatable and fits, else at HIMEM_GPA), a zero page is built
 *            at ZERO_PAGE_GPA, and the vCPU starts at load address + 0x200
 *            in 64-bit mode with rsi = ZERO_PAGE_GPA.
 *   ELF      an x86-64 vmlinux loaded at its segments' physical addresses.
 *            With a PVH note (XEN_ELFNOTE_PHYS32_ENTRY) the vCPU starts at
 *            the note's entry in 32-bit protected mode with
 *            ebx = PVH_START_INFO_GPA (struct hvm_start_info); without one
 *            it starts at e_entry (made physical) in 64-bit mode with a zero
 *            page, as for a bzImage.
 *
 * Every region of the guest_mem is taken to be guest RAM. There must be a
 * region at guest-physical 0 reaching past HIMEM_GPA (it holds the boot
 * structures of layout.h and the kernel); other regions (RAM above
 * RAM_HIGH_GPA) are reported to the kernel as usable RAM. The command line
 * goes to CMDLINE_GPA, an initrd, if any, to INITRD_GPA (the zero page's
 * ramdisk fields or the PVH module list tell the kernel). The MP table
 * (mptable.h) and the vCPU state (x86_entry.h) are built separately.
 */
#ifndef EROVM_BOOT_H
#define EROVM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/guest_mem.h"

enum boot_entry_mode {
	BOOT_ENTRY_64BIT, /* long mode, paging on; rsi = zero page */
	BOOT_ENTRY_PVH,   /* 32-bit protected mode, paging off; ebx = start info */
};

/* How the boot vCPU must start; x86_entry_setup() turns it into registers. */
struct boot_entry {
	enum boot_entry_mode mode;
	uint64_t rip;
	/* ZERO_PAGE_GPA (passed in rsi) or PVH_START_INFO_GPA (in ebx) */
	uint64_t boot_info_gpa;
};

/* What the kernel is handed besides its image. */
struct boot_handoff {
	const char *cmdline;
	const void *initrd;     /* NULL for none */
	size_t initrd_size;     /* at most INITRD_MAX */
};

/* x86's COMMAND_LINE_SIZE less the NUL: what a kernel without a setup
 * header (an ELF vmlinux) keeps of its command line. */
#define BOOT_X86_CMDLINE_MAX 2047

/*
 * The longest command line, without its NUL, that the kernel @image
 * (untrusted) accepts: a bzImage's cmdline_size, else BOOT_X86_CMDLINE_MAX;
 * never more than CMDLINE_MAX - 1. For an image boot_load_kernel() would
 * refuse, BOOT_X86_CMDLINE_MAX.
 */
size_t boot_cmdline_limit(const void *image, size_t image_size);

/*
 * Detects the format of the kernel @image (@image_size bytes, untrusted),
 * validates it, loads it into @mem, writes @handoff's command line and
 * initrd and the boot structures the format needs, and fills @entry.
 *
 * Returns 0, or a negative errno with a human-readable reason in @err
 * (always NUL-terminated when @err_size > 0): -ENOEXEC for an image that is
 * not a loadable kernel (unknown format, truncated, malformed, unsupported
 * boot protocol), -ENOMEM when it does not fit in guest RAM, -E2BIG for a
 * command line too long or an initrd larger than INITRD_MAX, -EINVAL or
 * -EFAULT when @mem lacks the low RAM region. Guest RAM may be partly
 * written on failure.
 */
int boot_load_kernel(const struct guest_mem *mem, const void *image,
		     size_t image_size, const struct boot_handoff *handoff,
		     struct boot_entry *entry, char *err, size_t err_size);

/* boot_load_kernel() for an image already known to be a bzImage. */
int boot_load_bzimage(const struct guest_mem *mem, const void *image,
		      size_t image_size, const struct boot_handoff *handoff,
		      struct boot_entry *entry, char *err, size_t err_size);

/* boot_load_kernel() for an image already known to be an ELF file. */
int boot_load_elf(const struct guest_mem *mem, const void *image,
		  size_t image_size, const struct boot_handoff *handoff,
		  struct boot_entry *entry, char *err, size_t err_size);

#endif
