/*
 * boot_params.c - what the bzImage and ELF loaders share: the memory map,
 * the command line, the zero page, and the choice between the two.
 */
#include "vmm/boot_params.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmm/boot.h"
#include "vmm/layout.h"

static_assert(sizeof(struct boot_params) == 4096, "zero page is one page");
static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "e820_entries");
static_assert(offsetof(struct boot_params, hdr) == 0x1f1, "setup header");
static_assert(offsetof(struct boot_params, hdr.cmd_line_ptr) == 0x228, "cmd_line_ptr");
static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "e820_table");
static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "memmap_paddr");
static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info v1");
static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "memmap entry");
static_assert(BOOT_MEMMAP_MAX <= E820_MAX_ENTRIES_ZEROPAGE, "zero page e820");
static_assert(EBDA_GPA < HIMEM_GPA && CMDLINE_GPA + CMDLINE_MAX <= EBDA_GPA,
	      "command line below the reserved area");

int boot_error(int errnum, char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (err_size > 0) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return errnum;
}

static void memmap_add(struct boot_e820_entry *map, unsigned int *nr,
		       uint64_t addr, uint64_t size, uint32_t type)
{
	map[(*nr)++] = (struct boot_e820_entry){
		.addr = addr, .size = size, .type = type,
	};
}

int boot_memory_map(const struct guest_mem *mem, struct boot_e820_entry *map,
		    unsigned int *nr_entries, char *err, size_t err_size)
{
	const struct guest_region *sorted[GUEST_MEM_MAX_REGIONS];
	unsigned int nr_regions = mem->nr_regions, nr = 0;

	/* Insertion sort: the kernel expects the map in address order. */
	for (unsigned int i = 0; i < nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];
		unsigned int j = i;

		for (; j > 0 && sorted[j - 1]->gpa > r->gpa; j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = r;
	}
	if (nr_regions == 0 || sorted[0]->gpa != 0 ||
	    sorted[0]->size <= HIMEM_GPA)
		return boot_error(-EINVAL, err, err_size,
				  "guest RAM must start at 0 and extend past 1 MiB");

	memmap_add(map, &nr, 0, EBDA_GPA, E820_RAM);
	memmap_add(map, &nr, EBDA_GPA, HIMEM_GPA - EBDA_GPA, E820_RESERVED);
	memmap_add(map, &nr, HIMEM_GPA, sorted[0]->size - HIMEM_GPA, E820_RAM);
	for (unsigned int i = 1; i < nr_regions; i++)
		memmap_add(map, &nr, sorted[i]->gpa, sorted[i]->size, E820_RAM);
	*nr_entries = nr;
	return 0;
}

int boot_write_cmdline(const struct guest_mem *mem, const char *cmdline,
		       size_t max_len, char *err, size_t err_size)
{
	size_t len = strlen(cmdline);

	if (max_len > CMDLINE_MAX - 1)
		max_len = CMDLINE_MAX - 1;
	if (len > max_len)
		return boot_error(-E2BIG, err, err_size,
				  "command line longer than the kernel's cmdline_size: %zu bytes, limit %zu",
				  len, max_len);
	if (guest_mem_write(mem, CMDLINE_GPA, cmdline, len + 1))
		return boot_error(-EFAULT, err, err_size,
				  "guest RAM does not cover the command line at 0x%x",
				  CMDLINE_GPA);
	return 0;
}

int boot_write_initrd(const struct guest_mem *mem,
		      const struct boot_handoff *handoff, char *err,
		      size_t err_size)
{
	if (!handoff->initrd)
		return 0;
	if (handoff->initrd_size > INITRD_MAX)
		return boot_error(-E2BIG, err, err_size,
				  "initrd of %zu bytes, limit %u", handoff->initrd_size,
				  INITRD_MAX);
	if (guest_mem_write(mem, INITRD_GPA, handoff->initrd, handoff->initrd_size))
		return boot_error(-EFAULT, err, err_size,
				  "guest RAM does not cover the initrd at 0x%x", INITRD_GPA);
	return 0;
}

int boot_write_zero_page(const struct guest_mem *mem,
			 struct boot_params *zero_page,
			 const struct boot_handoff *handoff, char *err,
			 size_t err_size)
{
	unsigned int nr_entries;
	int ret;

	ret = boot_memory_map(mem, zero_page->e820_table, &nr_entries, err,
			      err_size);
	if (ret)
		return ret;
	zero_page->e820_entries = nr_entries;
	zero_page->hdr.type_of_loader = BOOT_LOADER_UNDEFINED;
	/*
	 * Only LOADED_HIGH: the other flags ask things of the 16-bit setup
	 * code (heap, segments, quiet), which the 64-bit entry skips.
	 */
	zero_page->hdr.loadflags = LOADED_HIGH;
	zero_page->hdr.cmd_line_ptr = CMDLINE_GPA;
	zero_page->ext_cmd_line_ptr = 0;
	zero_page->hdr.ramdisk_image = handoff->initrd ? INITRD_GPA : 0;
	zero_page->hdr.ramdisk_size = handoff->initrd ? handoff->initrd_size : 0;
	zero_page->ext_ramdisk_image = 0;
	zero_page->ext_ramdisk_size = 0;
	if (guest_mem_write(mem, ZERO_PAGE_GPA, zero_page, sizeof(*zero_page)))
		return boot_error(-EFAULT, err, err_size,
				  "guest RAM does not cover the zero page at 0x%x",
				  ZERO_PAGE_GPA);
	return 0;
}

static bool image_is_bzimage(const uint8_t *image, size_t image_size)
{
	uint32_t magic;

	if (image_size < offsetof(struct boot_params, hdr.header) + sizeof(magic))
		return 0;
	memcpy(&magic, image + offsetof(struct boot_params, hdr.header),
	       sizeof(magic));
	return magic == BZIMAGE_HDR_MAGIC;
}

static bool image_is_elf(const uint8_t *image, size_t image_size)
{
	static const uint8_t elf_magic[4] = { 0x7f, 'E', 'L', 'F' };

	return image_size >= sizeof(elf_magic) &&
	       memcmp(image, elf_magic, sizeof(elf_magic)) == 0;
}

size_t boot_cmdline_limit(const void *image, size_t image_size)
{
	size_t field = offsetof(struct boot_params, hdr.cmdline_size);
	uint32_t cmdline_size;

	if (!image_is_bzimage(image, image_size) ||
	    image_size < field + sizeof(cmdline_size))
		return BOOT_X86_CMDLINE_MAX;
	memcpy(&cmdline_size, (const uint8_t *)image + field, sizeof(cmdline_size));
	cmdline_size = le32toh(cmdline_size);
	return cmdline_size < CMDLINE_MAX - 1 ? cmdline_size : CMDLINE_MAX - 1;
}

int boot_load_kernel(const struct guest_mem *mem, const void *image,
		     size_t image_size, const struct boot_handoff *handoff,
		     struct boot_entry *entry, char *err, size_t err_size)
{
	if (image_is_bzimage(image, image_size))
		return boot_load_bzimage(mem, image, image_size, handoff, entry,
					 err, err_size);
	if (image_is_elf(image, image_size))
		return boot_load_elf(mem, image, image_size, handoff, entry,
				     err, err_size);
	return boot_error(-ENOEXEC, err, err_size,
			  "not a Linux kernel: no bzImage setup header and no ELF magic");
}
