/*
 * Unit tests for the kernel loaders (vmm/boot_*.c): fake bzImages and ELF
 * files built in memory, loaded into malloc'd guest RAM. Expected values
 * use the boot protocols' raw offsets, not the structs the code uses, so a
 * wrong struct layout shows up here.
 */
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/boot.h"
#include "vmm/boot_params.h"
#include "vmm/layout.h"

#define LOW_SIZE (64ull << 20)
#define HIGH_SIZE (2ull << 20)
#define CMDLINE "console=ttyS0 root=/dev/vda"

/* Zero page / setup header offsets (Documentation/arch/x86/boot.rst). */
#define ZP_E820_ENTRIES 0x1e8
#define ZP_SENTINEL 0x1ef
#define ZP_SETUP_SECTS 0x1f1
#define ZP_SYSSIZE 0x1f4
#define ZP_BOOT_FLAG 0x1fe
#define ZP_JUMP 0x200
#define ZP_HEADER 0x202
#define ZP_VERSION 0x206
#define ZP_TYPE_OF_LOADER 0x210
#define ZP_LOADFLAGS 0x211
#define ZP_CODE32_START 0x214
#define ZP_RAMDISK_IMAGE 0x218
#define ZP_RAMDISK_SIZE 0x21c
#define ZP_CMD_LINE_PTR 0x228
#define ZP_KERNEL_ALIGNMENT 0x230
#define ZP_RELOCATABLE 0x234
#define ZP_XLOADFLAGS 0x236
#define ZP_CMDLINE_SIZE 0x238
#define ZP_PREF_ADDRESS 0x258
#define ZP_INIT_SIZE 0x260
#define ZP_HDR_END 0x26c
#define ZP_E820_TABLE 0x2d0
#define E820_ENTRY_SIZE 20

/* hvm_start_info offsets (xen/include/public/arch-x86/hvm/start_info.h). */
#define SI_MAGIC 0
#define SI_VERSION 4
#define SI_NR_MODULES 12
#define SI_MODLIST_PADDR 16
#define SI_CMDLINE_PADDR 24
#define SI_MEMMAP_PADDR 40
#define SI_MEMMAP_ENTRIES 48
#define SI_SIZE 56
#define MEMMAP_ENTRY_SIZE 24

struct fixture {
	struct guest_mem mem;
	uint8_t *low, *high;
	char err[256];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->low = calloc(1, LOW_SIZE);
	if (!f->low || guest_mem_add_region(&f->mem, 0, LOW_SIZE, f->low))
		return -1;
	*state = f;
	return 0;
}

static int setup_with_high(void **state)
{
	struct fixture *f;

	if (setup(state))
		return -1;
	f = *state;
	f->high = calloc(1, HIGH_SIZE);
	if (!f->high ||
	    guest_mem_add_region(&f->mem, RAM_HIGH_GPA, HIGH_SIZE, f->high))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->low);
	free(f->high);
	free(f);
	return 0;
}

static void put16(uint8_t *p, size_t off, uint16_t v) { memcpy(p + off, &v, 2); }
static void put32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }
static void put64(uint8_t *p, size_t off, uint64_t v) { memcpy(p + off, &v, 8); }
static uint16_t get16(const uint8_t *p, size_t off) { uint16_t v; memcpy(&v, p + off, 2); return v; }
static uint32_t get32(const uint8_t *p, size_t off) { uint32_t v; memcpy(&v, p + off, 4); return v; }
static uint64_t get64(const uint8_t *p, size_t off) { uint64_t v; memcpy(&v, p + off, 8); return v; }

static void assert_e820(const uint8_t *table, unsigned int index, uint64_t addr,
			uint64_t size, uint32_t type)
{
	const uint8_t *e = table + index * E820_ENTRY_SIZE;

	assert_int_equal(get64(e, 0), addr);
	assert_int_equal(get64(e, 8), size);
	assert_int_equal(get32(e, 16), type);
}

/* ---- bzImage ---- */

struct bzimage {
	uint8_t *bytes;
	size_t size;
	size_t kernel_offset;
	size_t kernel_size;
};

#define BZ_KERNEL_SIZE 0x4000
#define BZ_PREF 0x1000000ull
#define BZ_INIT_SIZE 0x800000

/*
 * A bzImage with protocol 2.15, relocatable, 2 MiB alignment, the given
 * setup_sects field and a kernel of @kernel_size bytes (a byte pattern).
 */
static struct bzimage make_bzimage(uint8_t setup_sects, size_t kernel_size)
{
	unsigned int sects = setup_sects ? setup_sects : 4;
	struct bzimage bz;

	bz.kernel_offset = (sects + 1) * 512;
	bz.kernel_size = kernel_size;
	bz.size = bz.kernel_offset + kernel_size;
	bz.bytes = calloc(1, bz.size);
	assert_non_null(bz.bytes);
	bz.bytes[ZP_SETUP_SECTS] = setup_sects;
	put32(bz.bytes, ZP_SYSSIZE, kernel_size / 16);
	put16(bz.bytes, ZP_BOOT_FLAG, 0xaa55);
	bz.bytes[ZP_JUMP] = 0xeb;
	bz.bytes[ZP_JUMP + 1] = ZP_HDR_END - ZP_HEADER;
	memcpy(bz.bytes + ZP_HEADER, "HdrS", 4);
	put16(bz.bytes, ZP_VERSION, 0x020f);
	bz.bytes[ZP_LOADFLAGS] = 0x01;
	put32(bz.bytes, ZP_KERNEL_ALIGNMENT, 0x200000);
	bz.bytes[ZP_RELOCATABLE] = 1;
	put16(bz.bytes, ZP_XLOADFLAGS, 0x1);
	put32(bz.bytes, ZP_CMDLINE_SIZE, 2047);
	put64(bz.bytes, ZP_PREF_ADDRESS, BZ_PREF);
	put32(bz.bytes, ZP_INIT_SIZE, BZ_INIT_SIZE);
	/* Past the header, so a copied-too-far header would show. */
	bz.bytes[0x280] = 0x5a;
	for (size_t i = 0; i < kernel_size; i++)
		bz.bytes[bz.kernel_offset + i] = (uint8_t)(i * 7 + 1);
	return bz;
}

static int load(struct fixture *f, const struct bzimage *bz,
		const char *cmdline, struct boot_entry *entry)
{
	f->err[0] = '\0';
	const struct boot_handoff handoff = { .cmdline = cmdline };

	return boot_load_kernel(&f->mem, bz->bytes, bz->size, &handoff, entry,
				f->err, sizeof(f->err));
}

static void assert_kernel_at(const struct fixture *f, const struct bzimage *bz,
			     uint64_t gpa)
{
	assert_memory_equal(f->low + gpa, bz->bytes + bz->kernel_offset,
			    bz->kernel_size);
}

static void test_bzimage_loads_at_pref_address(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(8, BZ_KERNEL_SIZE);
	struct boot_entry entry;
	const uint8_t *zp = f->low + ZERO_PAGE_GPA;

	assert_int_equal(load(f, &bz, CMDLINE, &entry), 0);
	assert_int_equal(entry.mode, BOOT_ENTRY_64BIT);
	assert_int_equal(entry.rip, BZ_PREF + 0x200);
	assert_int_equal(entry.boot_info_gpa, ZERO_PAGE_GPA);
	assert_kernel_at(f, &bz, BZ_PREF);

	assert_int_equal(zp[ZP_TYPE_OF_LOADER], 0xff);
	assert_int_equal(zp[ZP_LOADFLAGS], 0x01);
	assert_int_equal(get32(zp, ZP_CMD_LINE_PTR), CMDLINE_GPA);
	assert_string_equal((const char *)f->low + CMDLINE_GPA, CMDLINE);
	assert_int_equal(get32(zp, ZP_CODE32_START), BZ_PREF);
	assert_int_equal(get32(zp, ZP_RAMDISK_IMAGE), 0);
	assert_int_equal(get32(zp, ZP_RAMDISK_SIZE), 0);
	/* The setup header is copied from the image. */
	assert_int_equal(zp[ZP_SETUP_SECTS], 8);
	assert_int_equal(get16(zp, ZP_BOOT_FLAG), 0xaa55);
	assert_memory_equal(zp + ZP_HEADER, "HdrS", 4);
	assert_int_equal(get16(zp, ZP_VERSION), 0x020f);
	assert_int_equal(get32(zp, ZP_KERNEL_ALIGNMENT), 0x200000);
	assert_int_equal(get64(zp, ZP_PREF_ADDRESS), BZ_PREF);
	assert_int_equal(get32(zp, ZP_INIT_SIZE), BZ_INIT_SIZE);
	/* ...up to its end, not beyond. */
	assert_int_equal(zp[0x280], 0);
	assert_int_equal(zp[ZP_SENTINEL], 0);

	assert_int_equal(zp[ZP_E820_ENTRIES], 3);
	assert_e820(zp + ZP_E820_TABLE, 0, 0, EBDA_GPA, 1);
	assert_e820(zp + ZP_E820_TABLE, 1, EBDA_GPA, HIMEM_GPA - EBDA_GPA, 2);
	assert_e820(zp + ZP_E820_TABLE, 2, HIMEM_GPA, LOW_SIZE - HIMEM_GPA, 1);
	free(bz.bytes);
}

static void test_bzimage_non_relocatable_loads_at_1mib(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(8, BZ_KERNEL_SIZE);
	struct boot_entry entry;

	bz.bytes[ZP_RELOCATABLE] = 0;
	assert_int_equal(load(f, &bz, CMDLINE, &entry), 0);
	assert_int_equal(entry.rip, HIMEM_GPA + 0x200);
	assert_kernel_at(f, &bz, HIMEM_GPA);
	assert_int_equal(get32(f->low + ZERO_PAGE_GPA, ZP_CODE32_START),
			 HIMEM_GPA);
	free(bz.bytes);
}

static void test_bzimage_unusable_pref_address_falls_back(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(8, BZ_KERNEL_SIZE);
	struct boot_entry entry;

	/* Below 1 MiB, where the boot structures are. */
	put64(bz.bytes, ZP_PREF_ADDRESS, 0x80000);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), 0);
	assert_int_equal(entry.rip, HIMEM_GPA + 0x200);
	assert_kernel_at(f, &bz, HIMEM_GPA);

	/* Not aligned to kernel_alignment. */
	put64(bz.bytes, ZP_PREF_ADDRESS, BZ_PREF + 0x1000);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), 0);
	assert_int_equal(entry.rip, HIMEM_GPA + 0x200);
	free(bz.bytes);
}

static void test_bzimage_setup_sects_zero_means_four(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(0, BZ_KERNEL_SIZE);
	struct boot_entry entry;

	assert_int_equal(bz.kernel_offset, 5 * 512);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), 0);
	assert_kernel_at(f, &bz, BZ_PREF);
	free(bz.bytes);
}

static void test_bzimage_truncated(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(8, BZ_KERNEL_SIZE);
	const size_t cuts[] = { 0x207, 0x220, ZP_HDR_END - 1, 0x400,
				bz.kernel_offset, bz.kernel_offset + 1,
				bz.size - 1 };
	struct boot_entry entry;
	size_t full = bz.size;

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		bz.size = cuts[i];
		assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
		assert_non_null(strstr(f->err, "truncated"));
	}
	/* Too short to even see the magic. */
	bz.size = 0x100;
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "not a Linux kernel"));
	bz.size = 0;
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);

	bz.size = 0x400;
	load(f, &bz, CMDLINE, &entry);
	assert_string_equal(f->err,
			    "kernel image truncated: setup header says 8 setup sectors but file has 1024 bytes");
	bz.size = full;
	assert_int_equal(load(f, &bz, CMDLINE, &entry), 0);
	free(bz.bytes);
}

static void test_bzimage_bad_header_fields(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(8, BZ_KERNEL_SIZE);
	struct boot_entry entry;

	put16(bz.bytes, ZP_BOOT_FLAG, 0x55aa);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "boot_flag"));
	put16(bz.bytes, ZP_BOOT_FLAG, 0xaa55);

	memcpy(bz.bytes + ZP_HEADER, "HdrX", 4);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_string_equal(f->err,
			    "not a Linux kernel: no bzImage setup header and no ELF magic");
	memcpy(bz.bytes + ZP_HEADER, "HdrS", 4);

	put16(bz.bytes, ZP_VERSION, 0x0205);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_string_equal(f->err,
			    "bzImage boot protocol 2.05 too old (need >= 2.12 for 64-bit entry / xloadflags XLF_KERNEL_64)");
	put16(bz.bytes, ZP_VERSION, 0x020b);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	put16(bz.bytes, ZP_VERSION, 0x020c);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), 0);

	put16(bz.bytes, ZP_XLOADFLAGS, 0x2);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "XLF_KERNEL_64"));
	put16(bz.bytes, ZP_XLOADFLAGS, 0x1);

	bz.bytes[ZP_LOADFLAGS] = 0;
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "zImage"));
	bz.bytes[ZP_LOADFLAGS] = 1;

	/* A header ending before init_size. */
	bz.bytes[ZP_JUMP + 1] = 0x40;
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "before init_size"));
	bz.bytes[ZP_JUMP + 1] = ZP_HDR_END - ZP_HEADER;

	put32(bz.bytes, ZP_SYSSIZE, 0);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "syssize 0"));
	put32(bz.bytes, ZP_SYSSIZE, BZ_KERNEL_SIZE / 16);

	put32(bz.bytes, ZP_KERNEL_ALIGNMENT, 0x300000);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "power of two"));
	put32(bz.bytes, ZP_KERNEL_ALIGNMENT, 0x200000);

	put32(bz.bytes, ZP_INIT_SIZE, 0);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	put32(bz.bytes, ZP_INIT_SIZE, BZ_INIT_SIZE);

	/* A non-relocatable kernel that wants to run below 1 MiB. */
	bz.bytes[ZP_RELOCATABLE] = 0;
	put64(bz.bytes, ZP_PREF_ADDRESS, 0x10000);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "below 1 MiB"));
	free(bz.bytes);
}

static void test_bzimage_too_large_for_ram(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(8, LOW_SIZE - HIMEM_GPA + 16);
	struct boot_entry entry;

	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOMEM);
	assert_non_null(strstr(f->err, "kernel too large for guest RAM"));
	free(bz.bytes);
}

static void test_bzimage_init_size_beyond_ram(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(8, BZ_KERNEL_SIZE);
	struct boot_entry entry;

	put32(bz.bytes, ZP_INIT_SIZE, LOW_SIZE - BZ_PREF + 1);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOMEM);
	assert_non_null(strstr(f->err, "init_size"));
	put32(bz.bytes, ZP_INIT_SIZE, LOW_SIZE - BZ_PREF);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), 0);

	/* Also when it runs at pref_address but is loaded at 1 MiB. */
	bz.bytes[ZP_RELOCATABLE] = 0;
	put32(bz.bytes, ZP_INIT_SIZE, LOW_SIZE - BZ_PREF + 1);
	assert_int_equal(load(f, &bz, CMDLINE, &entry), -ENOMEM);
	free(bz.bytes);
}

static void test_bzimage_command_line_limits(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(8, BZ_KERNEL_SIZE);
	struct boot_entry entry;
	char *huge = malloc(CMDLINE_MAX + 1);

	assert_non_null(huge);
	put32(bz.bytes, ZP_CMDLINE_SIZE, 16);
	assert_int_equal(load(f, &bz, "0123456789abcdef", &entry), 0);
	assert_string_equal((const char *)f->low + CMDLINE_GPA, "0123456789abcdef");
	assert_int_equal(load(f, &bz, "0123456789abcdefg", &entry), -E2BIG);
	assert_non_null(strstr(f->err,
			       "command line longer than the kernel's cmdline_size"));

	/* CMDLINE_MAX bounds even a kernel that claims more. */
	put32(bz.bytes, ZP_CMDLINE_SIZE, 0xffffffff);
	memset(huge, 'x', CMDLINE_MAX);
	huge[CMDLINE_MAX] = '\0';
	assert_int_equal(load(f, &bz, huge, &entry), -E2BIG);
	huge[CMDLINE_MAX - 1] = '\0';
	assert_int_equal(load(f, &bz, huge, &entry), 0);
	assert_int_equal(strlen((const char *)f->low + CMDLINE_GPA), CMDLINE_MAX - 1);
	free(huge);
	free(bz.bytes);
}

static void test_bzimage_initrd_in_zero_page(void **state)
{
	struct fixture *f = *state;
	struct bzimage bz = make_bzimage(8, BZ_KERNEL_SIZE);
	static char initrd[INITRD_MAX + 1];
	struct boot_handoff handoff = {
		.cmdline = CMDLINE, .initrd = initrd, .initrd_size = 1000,
	};
	struct boot_entry entry;

	memset(initrd, 0x5c, sizeof(initrd));
	assert_int_equal(boot_load_kernel(&f->mem, bz.bytes, bz.size, &handoff,
					  &entry, f->err, sizeof(f->err)), 0);
	assert_int_equal(get32(f->low + ZERO_PAGE_GPA, ZP_RAMDISK_IMAGE), INITRD_GPA);
	assert_int_equal(get32(f->low + ZERO_PAGE_GPA, ZP_RAMDISK_SIZE), 1000);
	assert_memory_equal(f->low + INITRD_GPA, initrd, 1000);
	/* Clear of the command line, below the EBDA and the kernel. */
	assert_true(INITRD_GPA >= CMDLINE_GPA + CMDLINE_MAX);
	assert_true(INITRD_GPA + INITRD_MAX <= EBDA_GPA);

	handoff.initrd_size = INITRD_MAX + 1;
	assert_int_equal(boot_load_kernel(&f->mem, bz.bytes, bz.size, &handoff,
					  &entry, f->err, sizeof(f->err)), -E2BIG);
	assert_non_null(strstr(f->err, "initrd of 65537 bytes"));
	free(bz.bytes);
}

static void test_cmdline_limit_from_setup_header(void **state)
{
	struct bzimage bz = make_bzimage(8, BZ_KERNEL_SIZE);

	(void)state;
	assert_int_equal(boot_cmdline_limit(bz.bytes, bz.size), 2047);
	put32(bz.bytes, ZP_CMDLINE_SIZE, 255);
	assert_int_equal(boot_cmdline_limit(bz.bytes, bz.size), 255);
	put32(bz.bytes, ZP_CMDLINE_SIZE, 0xffffffff);
	assert_int_equal(boot_cmdline_limit(bz.bytes, bz.size), CMDLINE_MAX - 1);
	/* Neither format: the x86 default, as for a header cut short. */
	assert_int_equal(boot_cmdline_limit("junk", 4), BOOT_X86_CMDLINE_MAX);
	assert_int_equal(boot_cmdline_limit(bz.bytes, ZP_CMDLINE_SIZE + 2),
			 BOOT_X86_CMDLINE_MAX);
	free(bz.bytes);
}

static void test_errors_with_small_err_buffer(void **state)
{
	struct fixture *f = *state;
	const struct boot_handoff handoff = { .cmdline = "" };
	struct boot_entry entry;
	char err[8];

	assert_int_equal(boot_load_kernel(&f->mem, "junk", 4, &handoff, &entry, err,
					  sizeof(err)), -ENOEXEC);
	assert_string_equal(err, "not a L");
	assert_int_equal(boot_load_kernel(&f->mem, "junk", 4, &handoff, &entry, NULL,
					  0), -ENOEXEC);
}

/* ---- ELF ---- */

#define ELF_PADDR 0x1000000ull
#define ELF_VADDR 0xffffffff81000000ull
#define ELF_TEXT_OFFSET 0x1000
#define ELF_TEXT_SIZE 0x1000
#define ELF_MEM_SIZE 0x3000      /* two pages of bss */
#define ELF_NOTE_OFFSET 0x2000
#define ELF_SIZE 0x3000
#define ELF_PVH_ENTRY (ELF_PADDR + 0x40)
#define ELF_PHNUM 2

struct elf_file {
	uint8_t *bytes;
	size_t size;
};

static Elf64_Ehdr *elf_ehdr(struct elf_file *elf)
{
	return (Elf64_Ehdr *)elf->bytes;
}

static Elf64_Phdr *elf_phdr(struct elf_file *elf, unsigned int i)
{
	return (Elf64_Phdr *)(elf->bytes + sizeof(Elf64_Ehdr)) + i;
}

/* Appends a note at *@off in the note area; returns where its desc is. */
static size_t add_note(uint8_t *bytes, size_t *off, const char *name,
		       uint32_t type, const void *desc, uint32_t descsz)
{
	uint32_t namesz = strlen(name) + 1;
	size_t desc_off;

	put32(bytes, *off, namesz);
	put32(bytes, *off + 4, descsz);
	put32(bytes, *off + 8, type);
	memcpy(bytes + *off + 12, name, namesz);
	desc_off = *off + 12 + ((namesz + 3) & ~3u);
	memcpy(bytes + desc_off, desc, descsz);
	*off = desc_off + ((descsz + 3) & ~3u);
	return desc_off;
}

/*
 * A vmlinux-like ELF: one PT_LOAD (text + bss) at ELF_PADDR / ELF_VADDR,
 * one PT_NOTE with a GNU note, a Xen note of another type and, if
 * @pvh_desc_size is 4 or 8, the PVH entry note.
 */
static struct elf_file make_elf(uint32_t pvh_desc_size)
{
	struct elf_file elf = { .bytes = calloc(1, ELF_SIZE), .size = ELF_SIZE };
	static const uint8_t build_id[20] = { 1, 2, 3 };
	uint64_t pvh_entry = ELF_PVH_ENTRY, other = 0x200000;
	size_t note_end = ELF_NOTE_OFFSET;
	Elf64_Ehdr *ehdr;
	Elf64_Phdr *load, *note;

	assert_non_null(elf.bytes);
	ehdr = elf_ehdr(&elf);
	memcpy(ehdr->e_ident, ELFMAG, SELFMAG);
	ehdr->e_ident[EI_CLASS] = ELFCLASS64;
	ehdr->e_ident[EI_DATA] = ELFDATA2LSB;
	ehdr->e_ident[EI_VERSION] = EV_CURRENT;
	ehdr->e_type = ET_EXEC;
	ehdr->e_machine = EM_X86_64;
	ehdr->e_version = EV_CURRENT;
	ehdr->e_entry = ELF_VADDR + 0x100;
	ehdr->e_phoff = sizeof(Elf64_Ehdr);
	ehdr->e_ehsize = sizeof(Elf64_Ehdr);
	ehdr->e_phentsize = sizeof(Elf64_Phdr);
	ehdr->e_phnum = ELF_PHNUM;

	load = elf_phdr(&elf, 0);
	load->p_type = PT_LOAD;
	load->p_offset = ELF_TEXT_OFFSET;
	load->p_vaddr = ELF_VADDR;
	load->p_paddr = ELF_PADDR;
	load->p_filesz = ELF_TEXT_SIZE;
	load->p_memsz = ELF_MEM_SIZE;
	for (size_t i = 0; i < ELF_TEXT_SIZE; i++)
		elf.bytes[ELF_TEXT_OFFSET + i] = (uint8_t)(i * 3 + 1);

	add_note(elf.bytes, &note_end, "GNU", NT_GNU_BUILD_ID, build_id,
		 sizeof(build_id));
	add_note(elf.bytes, &note_end, "Xen", 19, &other, sizeof(other));
	if (pvh_desc_size)
		add_note(elf.bytes, &note_end, "Xen", 18, &pvh_entry,
			 pvh_desc_size);
	note = elf_phdr(&elf, 1);
	note->p_type = PT_NOTE;
	note->p_offset = ELF_NOTE_OFFSET;
	note->p_filesz = note_end - ELF_NOTE_OFFSET;
	note->p_memsz = note->p_filesz;
	note->p_align = 4;
	return elf;
}

static int load_elf(struct fixture *f, struct elf_file *elf,
		    struct boot_entry *entry)
{
	f->err[0] = '\0';
	const struct boot_handoff handoff = { .cmdline = CMDLINE };

	return boot_load_kernel(&f->mem, elf->bytes, elf->size, &handoff, entry,
				f->err, sizeof(f->err));
}

static void assert_elf_loaded(const struct fixture *f, const struct elf_file *elf)
{
	assert_memory_equal(f->low + ELF_PADDR, elf->bytes + ELF_TEXT_OFFSET,
			    ELF_TEXT_SIZE);
	for (size_t i = ELF_TEXT_SIZE; i < ELF_MEM_SIZE; i++)
		assert_int_equal(f->low[ELF_PADDR + i], 0);
}

static void test_elf_pvh_entry_and_start_info(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(4);
	const uint8_t *si = f->low + PVH_START_INFO_GPA;
	const uint8_t *memmap = f->low + PVH_START_INFO_GPA + SI_SIZE;
	struct boot_entry entry;

	/* Stale bytes where the bss goes must be cleared. */
	memset(f->low + ELF_PADDR, 0xaa, ELF_MEM_SIZE + 16);
	assert_int_equal(load_elf(f, &elf, &entry), 0);
	assert_int_equal(entry.mode, BOOT_ENTRY_PVH);
	assert_int_equal(entry.rip, ELF_PVH_ENTRY);
	assert_int_equal(entry.boot_info_gpa, PVH_START_INFO_GPA);
	assert_elf_loaded(f, &elf);
	assert_int_equal(f->low[ELF_PADDR + ELF_MEM_SIZE], 0xaa);

	assert_int_equal(get32(si, SI_MAGIC), 0x336ec578);
	assert_int_equal(get32(si, SI_VERSION), 1);
	assert_int_equal(get32(si, SI_NR_MODULES), 0);
	assert_int_equal(get64(si, SI_CMDLINE_PADDR), CMDLINE_GPA);
	assert_string_equal((const char *)f->low + CMDLINE_GPA, CMDLINE);
	assert_int_equal(get64(si, SI_MEMMAP_PADDR), PVH_START_INFO_GPA + SI_SIZE);
	assert_int_equal(get32(si, SI_MEMMAP_ENTRIES), 3);
	assert_int_equal(get64(memmap, 0), 0);
	assert_int_equal(get64(memmap, 8), EBDA_GPA);
	assert_int_equal(get32(memmap, 16), 1);
	assert_int_equal(get64(memmap + MEMMAP_ENTRY_SIZE, 0), EBDA_GPA);
	assert_int_equal(get32(memmap + MEMMAP_ENTRY_SIZE, 16), 2);
	assert_int_equal(get64(memmap + 2 * MEMMAP_ENTRY_SIZE, 0), HIMEM_GPA);
	assert_int_equal(get64(memmap + 2 * MEMMAP_ENTRY_SIZE, 8),
			 LOW_SIZE - HIMEM_GPA);
	assert_int_equal(get32(memmap + 2 * MEMMAP_ENTRY_SIZE, 16), 1);
	/* No zero page for PVH. */
	assert_int_equal(get32(f->low + ZERO_PAGE_GPA, ZP_HEADER), 0);
	free(elf.bytes);
}

static void test_elf_pvh_initrd_is_the_first_module(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(4);
	const uint8_t *si = f->low + PVH_START_INFO_GPA;
	static const char initrd[] = "bootconfig block";
	const struct boot_handoff handoff = {
		.cmdline = CMDLINE, .initrd = initrd, .initrd_size = sizeof(initrd),
	};
	struct boot_entry entry;
	const uint8_t *module;
	uint64_t modlist;

	assert_int_equal(boot_load_kernel(&f->mem, elf.bytes, elf.size, &handoff,
					  &entry, f->err, sizeof(f->err)), 0);
	assert_int_equal(get32(si, SI_NR_MODULES), 1);
	modlist = get64(si, SI_MODLIST_PADDR);
	/* Between the start info and the zero page, clear of the memmap. */
	assert_true(modlist >= PVH_START_INFO_GPA + SI_SIZE + 3 * MEMMAP_ENTRY_SIZE);
	assert_true(modlist + 32 <= ZERO_PAGE_GPA);
	module = f->low + modlist;
	assert_int_equal(get64(module, 0), INITRD_GPA);
	assert_int_equal(get64(module, 8), sizeof(initrd));
	assert_int_equal(get64(module, 16), 0); /* no module command line */
	assert_memory_equal(f->low + INITRD_GPA, initrd, sizeof(initrd));
	free(elf.bytes);
}

static void test_elf_cmdline_limit_is_x86s(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(4);
	char line[BOOT_X86_CMDLINE_MAX + 2];
	struct boot_handoff handoff = { .cmdline = line };
	struct boot_entry entry;

	/* No setup header to say otherwise: the kernel keeps 2047 bytes. */
	assert_int_equal(boot_cmdline_limit(elf.bytes, elf.size), BOOT_X86_CMDLINE_MAX);
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(boot_load_kernel(&f->mem, elf.bytes, elf.size, &handoff,
					  &entry, f->err, sizeof(f->err)), -E2BIG);
	line[BOOT_X86_CMDLINE_MAX] = '\0';
	assert_int_equal(boot_load_kernel(&f->mem, elf.bytes, elf.size, &handoff,
					  &entry, f->err, sizeof(f->err)), 0);
	free(elf.bytes);
}

static void test_elf_pvh_note_with_8_byte_entry(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(8);
	struct boot_entry entry;

	assert_int_equal(load_elf(f, &elf, &entry), 0);
	assert_int_equal(entry.mode, BOOT_ENTRY_PVH);
	assert_int_equal(entry.rip, ELF_PVH_ENTRY);
	free(elf.bytes);
}

static void test_elf_without_note_uses_64bit_entry(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(0);
	const uint8_t *zp = f->low + ZERO_PAGE_GPA;
	struct boot_entry entry;

	/* e_entry virtual, as a vmlinux linked at __START_KERNEL_map has. */
	assert_int_equal(load_elf(f, &elf, &entry), 0);
	assert_int_equal(entry.mode, BOOT_ENTRY_64BIT);
	assert_int_equal(entry.rip, ELF_PADDR + 0x100);
	assert_int_equal(entry.boot_info_gpa, ZERO_PAGE_GPA);
	assert_elf_loaded(f, &elf);
	assert_int_equal(get16(zp, ZP_BOOT_FLAG), 0xaa55);
	assert_memory_equal(zp + ZP_HEADER, "HdrS", 4);
	assert_int_equal(zp[ZP_TYPE_OF_LOADER], 0xff);
	assert_int_equal(zp[ZP_LOADFLAGS], 0x01);
	assert_int_equal(get32(zp, ZP_CMD_LINE_PTR), CMDLINE_GPA);
	assert_int_equal(zp[ZP_E820_ENTRIES], 3);
	assert_e820(zp + ZP_E820_TABLE, 2, HIMEM_GPA, LOW_SIZE - HIMEM_GPA, 1);

	/* e_entry physical, as Linux's vmlinux has. */
	elf_ehdr(&elf)->e_entry = ELF_PADDR + 0x123;
	assert_int_equal(load_elf(f, &elf, &entry), 0);
	assert_int_equal(entry.rip, ELF_PADDR + 0x123);

	elf_ehdr(&elf)->e_entry = ELF_VADDR + ELF_MEM_SIZE;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "no loadable segment"));
	free(elf.bytes);
}

static void test_elf_truncated(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(4);
	const size_t cuts[] = { 4, sizeof(Elf64_Ehdr) - 1,
				sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr),
				ELF_TEXT_OFFSET + ELF_TEXT_SIZE - 1 };
	struct boot_entry entry;

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		elf.size = cuts[i];
		assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
		assert_non_null(strstr(f->err, "truncated"));
	}
	/* The note segment cut off. */
	elf.size = ELF_NOTE_OFFSET + 8;
	elf_phdr(&elf, 0)->p_filesz = ELF_NOTE_OFFSET - ELF_TEXT_OFFSET;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "note segment"));
	free(elf.bytes);
}

static void test_elf_bad_headers(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(4);
	Elf64_Ehdr *ehdr = elf_ehdr(&elf);
	struct boot_entry entry;

	ehdr->e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	ehdr->e_ident[EI_CLASS] = ELFCLASS64;
	ehdr->e_ident[EI_DATA] = ELFDATA2MSB;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	ehdr->e_ident[EI_DATA] = ELFDATA2LSB;
	ehdr->e_machine = EM_386;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	ehdr->e_machine = EM_X86_64;
	ehdr->e_type = ET_DYN;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	ehdr->e_type = ET_EXEC;
	ehdr->e_phentsize = sizeof(Elf64_Phdr) + 8;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	ehdr->e_phentsize = sizeof(Elf64_Phdr);
	ehdr->e_phnum = 0;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	ehdr->e_phnum = PN_XNUM;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	ehdr->e_phnum = ELF_PHNUM;
	assert_int_equal(load_elf(f, &elf, &entry), 0);
	free(elf.bytes);
}

static void test_elf_program_header_table_overflow(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(4);
	Elf64_Ehdr *ehdr = elf_ehdr(&elf);
	struct boot_entry entry;

	ehdr->e_phoff = UINT64_MAX - 8;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	ehdr->e_phoff = ELF_SIZE - sizeof(Elf64_Phdr) + 1;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	ehdr->e_phoff = sizeof(Elf64_Ehdr);
	ehdr->e_phnum = 0xfffe;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "program headers"));
	free(elf.bytes);
}

static void test_elf_bad_segments(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(4);
	Elf64_Phdr *load = elf_phdr(&elf, 0);
	struct boot_entry entry;

	load->p_filesz = ELF_MEM_SIZE + 1;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "exceeds memory size"));
	load->p_filesz = ELF_TEXT_SIZE;

	load->p_offset = UINT64_MAX - 0x10;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	load->p_offset = ELF_TEXT_OFFSET;

	load->p_paddr = LOW_SIZE - ELF_MEM_SIZE + 1;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOMEM);
	assert_non_null(strstr(f->err, "not in guest RAM"));
	load->p_paddr = UINT64_MAX - 0x10;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOMEM);
	load->p_paddr = 0x1000;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "below 1 MiB"));
	load->p_paddr = ELF_PADDR;

	load->p_type = PT_NULL;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "no loadable segment"));
	free(elf.bytes);
}

static void test_elf_bad_pvh_notes(void **state)
{
	struct fixture *f = *state;
	struct elf_file elf = make_elf(4);
	size_t note_end = ELF_NOTE_OFFSET;
	uint64_t outside = LOW_SIZE - 0x1000, odd = 0;
	struct boot_entry entry;

	add_note(elf.bytes, &note_end, "Xen", 18, &outside, 4);
	elf_phdr(&elf, 1)->p_filesz = note_end - ELF_NOTE_OFFSET;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "PVH entry"));

	note_end = ELF_NOTE_OFFSET;
	add_note(elf.bytes, &note_end, "Xen", 18, &odd, 2);
	elf_phdr(&elf, 1)->p_filesz = note_end - ELF_NOTE_OFFSET;
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "2-byte entry"));

	/* A descsz running past the segment. */
	put32(elf.bytes, ELF_NOTE_OFFSET + 4, 0xfffffff0);
	assert_int_equal(load_elf(f, &elf, &entry), -ENOEXEC);
	assert_non_null(strstr(f->err, "runs past"));
	free(elf.bytes);
}

/* ---- memory map ---- */

static void test_memory_map_with_high_region(void **state)
{
	struct fixture *f = *state;
	struct boot_e820_entry map[BOOT_MEMMAP_MAX];
	unsigned int nr = 0;

	assert_int_equal(boot_memory_map(&f->mem, map, &nr, f->err,
					 sizeof(f->err)), 0);
	assert_int_equal(nr, 4);
	assert_e820((const uint8_t *)map, 0, 0, EBDA_GPA, 1);
	assert_e820((const uint8_t *)map, 1, EBDA_GPA, HIMEM_GPA - EBDA_GPA, 2);
	assert_e820((const uint8_t *)map, 2, HIMEM_GPA, LOW_SIZE - HIMEM_GPA, 1);
	assert_e820((const uint8_t *)map, 3, RAM_HIGH_GPA, HIGH_SIZE, 1);
}

static void test_memory_map_sorts_and_needs_low_ram(void **state)
{
	uint8_t *low = calloc(1, 2 * HIMEM_GPA), *high = calloc(1, 0x1000);
	struct boot_e820_entry map[BOOT_MEMMAP_MAX];
	struct guest_mem no_low = { 0 }, small_low = { 0 }, unsorted = { 0 };
	unsigned int nr = 0;
	char err[128];

	(void)state;
	assert_non_null(low);
	assert_non_null(high);
	assert_int_equal(boot_memory_map(&no_low, map, &nr, err, sizeof(err)), -EINVAL);
	assert_int_equal(guest_mem_add_region(&no_low, RAM_HIGH_GPA, 0x1000, high), 0);
	assert_int_equal(boot_memory_map(&no_low, map, &nr, err, sizeof(err)), -EINVAL);

	assert_int_equal(guest_mem_add_region(&small_low, 0, HIMEM_GPA, low), 0);
	assert_int_equal(boot_memory_map(&small_low, map, &nr, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "past 1 MiB"));

	/* High region added first: the map still comes out in address order. */
	assert_int_equal(guest_mem_add_region(&unsorted, RAM_HIGH_GPA, 0x1000, high), 0);
	assert_int_equal(guest_mem_add_region(&unsorted, 0, 2 * HIMEM_GPA, low), 0);
	assert_int_equal(boot_memory_map(&unsorted, map, &nr, err, sizeof(err)), 0);
	assert_int_equal(nr, 4);
	assert_e820((const uint8_t *)map, 0, 0, EBDA_GPA, 1);
	assert_e820((const uint8_t *)map, 2, HIMEM_GPA, HIMEM_GPA, 1);
	assert_e820((const uint8_t *)map, 3, RAM_HIGH_GPA, 0x1000, 1);
	free(low);
	free(high);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bzimage_loads_at_pref_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_non_relocatable_loads_at_1mib, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_unusable_pref_address_falls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_setup_sects_zero_means_four, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_bad_header_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_too_large_for_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_init_size_beyond_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_command_line_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_initrd_in_zero_page, setup, teardown),
		cmocka_unit_test(test_cmdline_limit_from_setup_header),
		cmocka_unit_test_setup_teardown(test_errors_with_small_err_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_pvh_entry_and_start_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_pvh_initrd_is_the_first_module, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_cmdline_limit_is_x86s, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_pvh_note_with_8_byte_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_without_note_uses_64bit_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_bad_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_program_header_table_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_bad_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_bad_pvh_notes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_map_with_high_region, setup_with_high, teardown),
		cmocka_unit_test(test_memory_map_sorts_and_needs_low_ram),
	};

	return cmocka_run_group_tests_name("boot", tests, NULL, NULL);
}
