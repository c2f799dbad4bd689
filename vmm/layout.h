/*
 * layout.h - where erovm puts things in the guest-physical address space
 * and which legacy interrupts it uses.
 *
 * Low memory holds the structures the monitor builds for the boot; the
 * kernel goes at 1 MiB (bzImage) or at its ELF physical addresses; RAM
 * beyond RAM_LOW_MAX continues above 4 GiB, leaving a hole for MMIO
 * devices. There is no firmware: nothing else lives in low memory.
 */
#ifndef EROVM_LAYOUT_H
#define EROVM_LAYOUT_H

#define GDT_GPA 0x500
#define PVH_START_INFO_GPA 0x6000 /* struct hvm_start_info, then its memmap */
#define ZERO_PAGE_GPA 0x7000      /* struct boot_params */
#define PML4_GPA 0x9000           /* identity page tables for 64-bit entry */
#define PDPT_GPA 0xa000
#define PD_GPA 0xb000             /* 4 pages: 4 GiB in 2 MiB pages */
#define CMDLINE_GPA 0x20000
#define CMDLINE_MAX 4096          /* also bounded by the kernel's cmdline_size */
#define INITRD_GPA 0x30000        /* a bootconfig block (vmm/bootconfig.h) */
#define INITRD_MAX 0x10000
#define EBDA_GPA 0x9fc00          /* MP table lives here; reserved to 1 MiB */
#define HIMEM_GPA 0x100000        /* bzImage protected-mode kernel */
#define IDENTITY_MAP_END 0x100000000ull /* what the 64-bit entry's tables map */

#define RAM_LOW_MAX 0xc0000000ull /* RAM above this goes to 4 GiB and up */
#define RAM_HIGH_GPA 0x100000000ull

/* Fixed by the architecture; the MP table tells the kernel where they are. */
#define IOAPIC_GPA 0xfec00000ull
#define LAPIC_GPA 0xfee00000ull

#define VIRTIO_MMIO_BASE 0xd0000000ull
#define VIRTIO_MMIO_STRIDE 0x1000
/* Windows for this many devices; past what the kernel command line holds
 * they are announced through bootconfig (vmm/bootconfig.h). */
#define VIRTIO_MMIO_MAX_DEVICES 96

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_COM2_PORT 0x2f8
#define SERIAL_COM2_IRQ 3
#define I8042_DATA_PORT 0x60
#define I8042_COMMAND_PORT 0x64
/* Virtio-mmio device n gets IRQ n % 9 of these ISA IRQs (edge-triggered,
 * shared: Linux's virtio-mmio handler checks each device's interrupt
 * status), clear of the PIT (0), keyboard (1), cascade (2), COM2 (3),
 * COM1 (4), RTC (8) and FPU (13). */
#define VIRTIO_MMIO_IRQS { 5, 6, 7, 9, 10, 11, 12, 14, 15 }

#endif
