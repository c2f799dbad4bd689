/*
 * boot_params.h - boot structures shared by the kernel loaders: the memory
 * map, the command line, the zero page (struct boot_params of the Linux
 * x86 boot protocol, from linux-libc-dev) and the PVH start info (Xen's
 * public arch-x86/hvm/start_info.h, which no Debian header ships).
 */
#ifndef EROVM_BOOT_PARAMS_H
#define EROVM_BOOT_PARAMS_H

#include <stddef.h>
#include <stdint.h>
#include <asm/bootparam.h>
#include <asm/e820.h>

#include "vmm/boot.h"
#include "vmm/guest_mem.h"

/* Low RAM, EBDA..1 MiB reserved, RAM above 1 MiB, one per other region. */
#define BOOT_MEMMAP_MAX (3 + GUEST_MEM_MAX_REGIONS - 1)

#define BZIMAGE_HDR_MAGIC 0x53726448 /* "HdrS" */
#define BZIMAGE_BOOT_FLAG 0xaa55
#define BOOT_LOADER_UNDEFINED 0xff   /* type_of_loader: no assigned id */

#define HVM_START_MAGIC 0x336ec578
#define HVM_START_VERSION 1          /* the one with the memory map */

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;       /* version 1 from here */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

/* Types are the E820 ones. */
struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/*
 * Formats a loader error into @err (when @err_size > 0). Returns @errnum so
 * a caller can write `return boot_error(...)`.
 */
int boot_error(int errnum, char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Fills @map with the guest's memory map, sorted by address: RAM from 0 to
 * EBDA_GPA, EBDA_GPA to HIMEM_GPA reserved (MP table, legacy holes), RAM
 * from HIMEM_GPA to the end of the low region, then every other region of
 * @mem as RAM. @map holds BOOT_MEMMAP_MAX entries; *@nr_entries gets the
 * count. Returns 0 or -EINVAL (with @err) when @mem has no region at 0
 * reaching past HIMEM_GPA.
 */
int boot_memory_map(const struct guest_mem *mem, struct boot_e820_entry *map,
		    unsigned int *nr_entries, char *err, size_t err_size);

/*
 * Writes @cmdline, NUL-terminated, to CMDLINE_GPA. @max_len is the longest
 * string the kernel accepts, without the NUL; it is further bounded by
 * CMDLINE_MAX. Returns 0, -E2BIG (with @err) for a longer command line, or
 * -EFAULT if guest RAM does not cover CMDLINE_GPA.
 */
int boot_write_cmdline(const struct guest_mem *mem, const char *cmdline,
		       size_t max_len, char *err, size_t err_size);

/*
 * Copies @handoff's initrd, if it has one, to INITRD_GPA. Returns 0,
 * -E2BIG (with @err) for one larger than INITRD_MAX, or -EFAULT if guest
 * RAM does not cover it.
 */
int boot_write_initrd(const struct guest_mem *mem,
		      const struct boot_handoff *handoff, char *err,
		      size_t err_size);

/*
 * Completes @zero_page with what every loader sets (type_of_loader,
 * loadflags LOADED_HIGH, cmd_line_ptr = CMDLINE_GPA, the ramdisk fields
 * for @handoff's initrd, the memory map) and writes it to ZERO_PAGE_GPA.
 * The caller fills the rest of the setup header first. Returns 0 or a
 * negative errno (with @err).
 */
int boot_write_zero_page(const struct guest_mem *mem,
			 struct boot_params *zero_page,
			 const struct boot_handoff *handoff, char *err,
			 size_t err_size);

#endif
