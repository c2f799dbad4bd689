/*
 * bootconfig.h - kernel parameters handed over as a bootconfig block
 * (Linux Documentation/admin-guide/bootconfig.rst) in the initrd slot.
 *
 * The x86 kernel command line holds 2047 bytes, and every virtio-mmio
 * device costs ~36 of them (virtio_mmio.device=...). A kernel built with
 * CONFIG_BOOT_CONFIG and booted with "bootconfig" on its command line
 * reads up to 32 KiB of "kernel.KEY = VALUE" lines from the end of the
 * initrd and parses them as if they came first on the command line. erovm
 * passes a block with nothing before it as the whole initrd: the kernel
 * cuts it off and unpacks zero bytes, so there is still no initramfs.
 *
 * Layout, as the kernel's get_boot_config_from_initrd() reads it: the text,
 * NUL padding to a multiple of 4 bytes, then a le32 size of text plus
 * padding, a le32 checksum (the byte sum of text plus padding) and the
 * 12-byte magic "#BOOTCONFIG\n".
 */
#ifndef EROVM_BOOTCONFIG_H
#define EROVM_BOOTCONFIG_H

#include <stddef.h>

/* The kernel's XBC_DATA_MAX: text plus padding. */
#define BOOTCONFIG_DATA_MAX 32767
#define BOOTCONFIG_MAGIC "#BOOTCONFIG\n"
#define BOOTCONFIG_MAGIC_LEN 12
/* Text plus padding, size, checksum and magic. */
#define BOOTCONFIG_BLOCK_MAX (BOOTCONFIG_DATA_MAX + 1 + 8 + BOOTCONFIG_MAGIC_LEN)

/*
 * Writes to @buf (@size bytes) a block holding the one line
 * `kernel.@param = "@values[0]", "@values[1]", ...`, which the kernel
 * turns into `@param="@values[0]" @param="@values[1]" ...` in front of its
 * command line. @param is a kernel parameter name (letters, digits, '_',
 * '-' and '.', not starting or ending with '.'); values may not contain
 * '"', '\'', '#', control characters or be empty (bootconfig could not
 * quote them). Returns the block's length, -EINVAL for a bad name or
 * value or no values, or -E2BIG when the text exceeds BOOTCONFIG_DATA_MAX
 * or the block does not fit in @size.
 */
int bootconfig_build(char *buf, size_t size, const char *param,
		     const char *const values[], unsigned int nr_values);

#endif
