/*
 * tiny-guest: the smallest guest both monitors boot the same way, for the
 * startup suite (bench/lib/startup.py) on a /dev/kvm that cannot boot
 * Linux. An ELF "kernel" with a PVH entry (the Xen note below), entered in
 * 32-bit protected mode. Its first instruction leads to an exit (guest-init's
 * marker port); then it prints "K\n" on COM1, reports status 0 and resets
 * the machine through the i8042, as guest-init would. If the reset does not
 * come, it halts with interrupts off.
 */
#define GUEST_PORT_MARKER 0x3f0
#define GUEST_PORT_STATUS 0x3f4
#define COM1 0x3f8
#define I8042_COMMAND 0x64
#define I8042_PULSE_RESET 0xfe
#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.Xen, "a"
	.p2align 2
	.long 4, 4, XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
	.long pvh_entry

	.text
	.code32
	.globl pvh_entry
pvh_entry:
	mov $1, %al
	mov $GUEST_PORT_MARKER, %dx
	out %al, %dx
	mov $COM1, %dx
	mov $'K', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	xor %eax, %eax
	mov $GUEST_PORT_STATUS, %dx
	out %eax, %dx
	mov $I8042_PULSE_RESET, %al
	out %al, $I8042_COMMAND
1:	cli
	hlt
	jmp 1b
