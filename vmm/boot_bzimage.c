/*
 * boot_bzimage.c - loading a bzImage through the Linux/x86 64-bit boot
 * protocol (Documentation/arch/x86/boot.rst).
 *
 * The image starts with the real-mode setup code, whose first sector holds
 * the setup header at the offsets it has in struct boot_params. The
 * protected-mode kernel follows the (setup_sects + 1) setup sectors. The
 * 16-bit setup code is never run: the vCPU enters the protected-mode
 * kernel's 64-bit entry, 0x200 past where it is loaded.
 */
#include "vmm/boot.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "vmm/boot_params.h"
#include "vmm/layout.h"
#include "vmm/range.h"

#define SECTOR_SIZE 512
#define DEFAULT_SETUP_SECTS 4          /* what setup_sects 0 means */
#define SYSSIZE_UNIT 16                /* syssize counts paragraphs */
#define ENTRY64_OFFSET 0x200
/* 2.12 brought xloadflags, the only way to learn the 64-bit entry exists. */
#define MIN_BOOT_PROTOCOL 0x020c

#define HDR_OFFSET offsetof(struct boot_params, hdr)
/* The byte after the 2-byte jump at 0x200 gives the header's end. */
#define HDR_JUMP_OFFSET (offsetof(struct boot_params, hdr.jump) + 1)
#define HDR_END_BASE offsetof(struct boot_params, hdr.header)
/* The zero page's room for the setup header ends at edd_mbr_sig_buffer. */
#define HDR_AREA_END offsetof(struct boot_params, edd_mbr_sig_buffer)
/* The last field this loader reads. */
#define HDR_MIN_END (offsetof(struct boot_params, hdr.init_size) + \
		     sizeof(((struct setup_header *)0)->init_size))

static uint16_t image_u16(const uint8_t *image, size_t offset)
{
	uint16_t value;

	memcpy(&value, image + offset, sizeof(value));
	return value;
}

static bool guest_fits(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t end;

	return guest_mem_ptr(mem, gpa, len) && range_end(gpa, len, &end) &&
	       end <= IDENTITY_MAP_END;
}

/* Checks what identifies a bzImage the 64-bit entry can boot. */
static int check_protocol(const uint8_t *image, size_t image_size, char *err,
			  size_t err_size)
{
	uint16_t boot_flag, version;
	uint32_t magic;

	if (image_size < offsetof(struct boot_params, hdr.version) + sizeof(version))
		return boot_error(-ENOEXEC, err, err_size,
				  "kernel image truncated: %zu bytes, too short for a setup header",
				  image_size);
	memcpy(&magic, image + offsetof(struct boot_params, hdr.header),
	       sizeof(magic));
	if (magic != BZIMAGE_HDR_MAGIC)
		return boot_error(-ENOEXEC, err, err_size,
				  "not a bzImage: no \"HdrS\" at 0x202");
	boot_flag = image_u16(image, offsetof(struct boot_params, hdr.boot_flag));
	if (boot_flag != BZIMAGE_BOOT_FLAG)
		return boot_error(-ENOEXEC, err, err_size,
				  "bad bzImage boot_flag 0x%04x (want 0xaa55)",
				  boot_flag);
	version = image_u16(image, offsetof(struct boot_params, hdr.version));
	if (version < MIN_BOOT_PROTOCOL)
		return boot_error(-ENOEXEC, err, err_size,
				  "bzImage boot protocol %u.%02u too old (need >= 2.12 for 64-bit entry / xloadflags XLF_KERNEL_64)",
				  version >> 8, version & 0xff);
	return 0;
}

/*
 * Copies the setup header into @zero_page and checks the fields that say
 * where the protected-mode kernel is in the file; *@kernel_size gets its
 * size and *@kernel_offset its file offset.
 */
static int read_setup_header(const uint8_t *image, size_t image_size,
			     struct boot_params *zero_page, size_t *kernel_offset,
			     uint64_t *kernel_size, char *err, size_t err_size)
{
	struct setup_header *hdr = &zero_page->hdr;
	size_t hdr_end, setup_size;
	unsigned int setup_sects;

	hdr_end = HDR_END_BASE + image[HDR_JUMP_OFFSET];
	if (hdr_end < HDR_MIN_END)
		return boot_error(-ENOEXEC, err, err_size,
				  "bzImage setup header ends at 0x%zx, before init_size (need 0x%zx)",
				  hdr_end, HDR_MIN_END);
	if (image_size < hdr_end)
		return boot_error(-ENOEXEC, err, err_size,
				  "kernel image truncated: setup header ends at 0x%zx but file has %zu bytes",
				  hdr_end, image_size);
	/* The boot protocol's rule: copy 0x1f1 up to the header's end. */
	memcpy(hdr, image + HDR_OFFSET,
	       (hdr_end < HDR_AREA_END ? hdr_end : HDR_AREA_END) - HDR_OFFSET);

	setup_sects = hdr->setup_sects ? hdr->setup_sects : DEFAULT_SETUP_SECTS;
	setup_size = (size_t)(setup_sects + 1) * SECTOR_SIZE;
	if (image_size <= setup_size)
		return boot_error(-ENOEXEC, err, err_size,
				  "kernel image truncated: setup header says %u setup sectors but file has %zu bytes",
				  setup_sects, image_size);
	*kernel_offset = setup_size;
	*kernel_size = (uint64_t)hdr->syssize * SYSSIZE_UNIT;
	if (*kernel_size == 0)
		return boot_error(-ENOEXEC, err, err_size,
				  "bzImage has no protected-mode kernel (syssize 0)");
	if (*kernel_size > image_size - setup_size)
		return boot_error(-ENOEXEC, err, err_size,
				  "kernel image truncated: setup header says the protected-mode kernel has %llu bytes but file has %zu after the setup code",
				  (unsigned long long)*kernel_size,
				  image_size - setup_size);
	if (!(hdr->loadflags & LOADED_HIGH))
		return boot_error(-ENOEXEC, err, err_size,
				  "zImage (not loaded high) is not supported");
	if (!(hdr->xloadflags & XLF_KERNEL_64))
		return boot_error(-ENOEXEC, err, err_size,
				  "bzImage has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)");
	if (hdr->init_size == 0)
		return boot_error(-ENOEXEC, err, err_size,
				  "bzImage setup header has init_size 0");
	return 0;
}

/*
 * Picks the load address: pref_address for a relocatable kernel when it is
 * above the boot structures and everything fits there (the decompressor
 * then needs no move), else HIMEM_GPA. Checks that the loaded kernel and
 * the init_size bytes it needs at its runtime address are in guest RAM
 * below IDENTITY_MAP_END, which the 64-bit entry runs under.
 */
static int place_kernel(const struct guest_mem *mem,
			const struct setup_header *hdr, uint64_t kernel_size,
			uint64_t *load_gpa, char *err, size_t err_size)
{
	uint64_t pref = hdr->pref_address, align = hdr->kernel_alignment;
	uint64_t load = HIMEM_GPA, runtime;

	if (hdr->relocatable_kernel) {
		uint64_t need = kernel_size > hdr->init_size ? kernel_size :
							      hdr->init_size;

		if (align == 0 || (align & (align - 1)))
			return boot_error(-ENOEXEC, err, err_size,
					  "bzImage kernel_alignment 0x%llx is not a power of two",
					  (unsigned long long)align);
		if (pref >= HIMEM_GPA && pref % align == 0 &&
		    guest_fits(mem, pref, need))
			load = pref;
		/* Where the decompressor puts the kernel (compressed/head_64.S). */
		runtime = (load + align - 1) & ~(align - 1);
		if (runtime < pref)
			runtime = pref;
	} else {
		runtime = pref;
	}
	if (runtime < HIMEM_GPA)
		return boot_error(-ENOEXEC, err, err_size,
				  "bzImage runs at 0x%llx, below 1 MiB where the boot structures are",
				  (unsigned long long)runtime);
	if (!guest_fits(mem, load, kernel_size))
		return boot_error(-ENOMEM, err, err_size,
				  "kernel too large for guest RAM: %llu bytes at 0x%llx",
				  (unsigned long long)kernel_size,
				  (unsigned long long)load);
	if (!guest_fits(mem, runtime, hdr->init_size))
		return boot_error(-ENOMEM, err, err_size,
				  "kernel too large for guest RAM: needs init_size 0x%x bytes from 0x%llx",
				  hdr->init_size, (unsigned long long)runtime);
	*load_gpa = load;
	return 0;
}

int boot_load_bzimage(const struct guest_mem *mem, const void *image,
		      size_t image_size, const struct boot_handoff *handoff,
		      struct boot_entry *entry, char *err, size_t err_size)
{
	struct boot_params zero_page = { 0 };
	const uint8_t *bytes = image;
	uint64_t kernel_size = 0, load_gpa = 0;
	size_t kernel_offset = 0;
	int ret;

	ret = check_protocol(bytes, image_size, err, err_size);
	if (ret)
		return ret;
	ret = read_setup_header(bytes, image_size, &zero_page, &kernel_offset,
				&kernel_size, err, err_size);
	if (ret)
		return ret;
	ret = place_kernel(mem, &zero_page.hdr, kernel_size, &load_gpa, err,
			   err_size);
	if (ret)
		return ret;
	ret = boot_write_cmdline(mem, handoff->cmdline, zero_page.hdr.cmdline_size,
				 err, err_size);
	if (ret)
		return ret;
	ret = boot_write_initrd(mem, handoff, err, err_size);
	if (ret)
		return ret;
	if (guest_mem_write(mem, load_gpa, bytes + kernel_offset, kernel_size))
		return boot_error(-EFAULT, err, err_size,
				  "cannot write the kernel to guest RAM at 0x%llx",
				  (unsigned long long)load_gpa);

	zero_page.hdr.code32_start = load_gpa;
	ret = boot_write_zero_page(mem, &zero_page, handoff, err, err_size);
	if (ret)
		return ret;
	*entry = (struct boot_entry){
		.mode = BOOT_ENTRY_64BIT,
		.rip = load_gpa + ENTRY64_OFFSET,
		.boot_info_gpa = ZERO_PAGE_GPA,
	};
	return 0;
}
