/*
 * boot_elf.c - loading an x86-64 ELF vmlinux at its physical addresses.
 *
 * The preferred entry is PVH: a "Xen" note of type XEN_ELFNOTE_PHYS32_ENTRY
 * gives a 32-bit physical entry that takes a struct hvm_start_info. Linux
 * emits the note's value as 4 or 8 bytes depending on the version, so both
 * are accepted. Without the note, e_entry is startup_64 and gets the 64-bit
 * boot protocol (a zero page), as Firecracker does for a vmlinux.
 */
#include "vmm/boot.h"

#include <assert.h>
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "vmm/boot_params.h"
#include "vmm/layout.h"
#include "vmm/range.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define PVH_NOTE_NAME "Xen" /* namesz 4 counts the NUL */
#define PVH_MEMMAP_GPA (PVH_START_INFO_GPA + sizeof(struct hvm_start_info))
#define PVH_MODLIST_GPA \
	(PVH_MEMMAP_GPA + BOOT_MEMMAP_MAX * sizeof(struct hvm_memmap_table_entry))

static_assert(PVH_MODLIST_GPA + sizeof(struct hvm_modlist_entry) <= ZERO_PAGE_GPA,
	      "PVH start info, memmap and module list fit below the zero page");

struct elf_image {
	const uint8_t *bytes;
	size_t size;
	Elf64_Ehdr ehdr;
};

static bool in_file(const struct elf_image *elf, uint64_t offset, uint64_t len)
{
	return range_within(0, elf->size, offset, len);
}

/* Only after check_elf_header() proved the table is inside the file. */
static void read_phdr(const struct elf_image *elf, unsigned int index,
		      Elf64_Phdr *phdr)
{
	memcpy(phdr, elf->bytes + elf->ehdr.e_phoff +
		     (uint64_t)index * sizeof(*phdr), sizeof(*phdr));
}

static int check_elf_header(struct elf_image *elf, char *err, size_t err_size)
{
	const Elf64_Ehdr *ehdr = &elf->ehdr;
	uint64_t table_size;

	if (elf->size < sizeof(*ehdr))
		return boot_error(-ENOEXEC, err, err_size,
				  "ELF kernel truncated: %zu bytes, shorter than the ELF header",
				  elf->size);
	memcpy(&elf->ehdr, elf->bytes, sizeof(elf->ehdr));
	if (memcmp(ehdr->e_ident, ELFMAG, SELFMAG) != 0)
		return boot_error(-ENOEXEC, err, err_size,
				  "not an ELF file: no ELF magic");
	if (ehdr->e_ident[EI_CLASS] != ELFCLASS64 ||
	    ehdr->e_ident[EI_DATA] != ELFDATA2LSB ||
	    ehdr->e_ident[EI_VERSION] != EV_CURRENT)
		return boot_error(-ENOEXEC, err, err_size,
				  "ELF kernel is not 64-bit little-endian ELF version 1");
	if (ehdr->e_machine != EM_X86_64)
		return boot_error(-ENOEXEC, err, err_size,
				  "ELF kernel is for machine %u, not x86-64",
				  ehdr->e_machine);
	if (ehdr->e_type != ET_EXEC)
		return boot_error(-ENOEXEC, err, err_size,
				  "ELF kernel has type %u, not an executable",
				  ehdr->e_type);
	if (ehdr->e_phentsize != sizeof(Elf64_Phdr))
		return boot_error(-ENOEXEC, err, err_size,
				  "ELF program header size %u (want %zu)",
				  ehdr->e_phentsize, sizeof(Elf64_Phdr));
	/* PN_XNUM would put the real count in a section header: not for a kernel. */
	if (ehdr->e_phnum == 0 || ehdr->e_phnum == PN_XNUM)
		return boot_error(-ENOEXEC, err, err_size,
				  "ELF kernel has %u program headers",
				  ehdr->e_phnum);
	table_size = (uint64_t)ehdr->e_phnum * sizeof(Elf64_Phdr);
	if (!in_file(elf, ehdr->e_phoff, table_size))
		return boot_error(-ENOEXEC, err, err_size,
				  "ELF kernel truncated: program headers at 0x%llx (%u of them) beyond the %zu-byte file",
				  (unsigned long long)ehdr->e_phoff,
				  ehdr->e_phnum, elf->size);
	return 0;
}

/*
 * Checks every PT_LOAD before anything is written: its file bytes inside
 * the file, its memory image inside guest RAM, above the boot structures
 * and below the 4 GiB a 32-bit PVH entry or the identity map reaches.
 */
static int check_segments(const struct guest_mem *mem,
			  const struct elf_image *elf, char *err,
			  size_t err_size)
{
	unsigned int nr_loads = 0;

	for (unsigned int i = 0; i < elf->ehdr.e_phnum; i++) {
		Elf64_Phdr phdr;
		uint64_t end;

		read_phdr(elf, i, &phdr);
		if (phdr.p_type != PT_LOAD || phdr.p_memsz == 0)
			continue;
		if (phdr.p_filesz > phdr.p_memsz)
			return boot_error(-ENOEXEC, err, err_size,
					  "ELF segment %u: file size 0x%llx exceeds memory size 0x%llx",
					  i, (unsigned long long)phdr.p_filesz,
					  (unsigned long long)phdr.p_memsz);
		if (phdr.p_filesz && !in_file(elf, phdr.p_offset, phdr.p_filesz))
			return boot_error(-ENOEXEC, err, err_size,
					  "ELF kernel truncated: segment %u at file offset 0x%llx (0x%llx bytes) beyond the %zu-byte file",
					  i, (unsigned long long)phdr.p_offset,
					  (unsigned long long)phdr.p_filesz,
					  elf->size);
		if (phdr.p_paddr < HIMEM_GPA)
			return boot_error(-ENOEXEC, err, err_size,
					  "ELF segment %u at 0x%llx is below 1 MiB, where the boot structures are",
					  i, (unsigned long long)phdr.p_paddr);
		if (!guest_mem_ptr(mem, phdr.p_paddr, phdr.p_memsz) ||
		    !range_end(phdr.p_paddr, phdr.p_memsz, &end) ||
		    end > IDENTITY_MAP_END)
			return boot_error(-ENOMEM, err, err_size,
					  "kernel too large for guest RAM: ELF segment %u at 0x%llx (0x%llx bytes) is not in guest RAM below 4 GiB",
					  i, (unsigned long long)phdr.p_paddr,
					  (unsigned long long)phdr.p_memsz);
		nr_loads++;
	}
	if (nr_loads == 0)
		return boot_error(-ENOEXEC, err, err_size,
				  "ELF kernel has no loadable segment");
	return 0;
}

/* Copies each PT_LOAD and zeroes its bss; check_segments() passed. */
static int load_segments(const struct guest_mem *mem,
			 const struct elf_image *elf, char *err,
			 size_t err_size)
{
	for (unsigned int i = 0; i < elf->ehdr.e_phnum; i++) {
		Elf64_Phdr phdr;
		uint8_t *dst;

		read_phdr(elf, i, &phdr);
		if (phdr.p_type != PT_LOAD || phdr.p_memsz == 0)
			continue;
		dst = guest_mem_ptr(mem, phdr.p_paddr, phdr.p_memsz);
		if (!dst)
			return boot_error(-EFAULT, err, err_size,
					  "cannot write ELF segment %u to guest RAM",
					  i);
		memcpy(dst, elf->bytes + phdr.p_offset, phdr.p_filesz);
		memset(dst + phdr.p_filesz, 0, phdr.p_memsz - phdr.p_filesz);
	}
	return 0;
}

/*
 * Translates @addr to a physical address inside a PT_LOAD's memory image,
 * matching it against p_paddr ranges or (@by_vaddr) p_vaddr ranges.
 */
static bool segment_address(const struct elf_image *elf, uint64_t addr,
			    bool by_vaddr, uint64_t *phys)
{
	for (unsigned int i = 0; i < elf->ehdr.e_phnum; i++) {
		Elf64_Phdr phdr;
		uint64_t base;

		read_phdr(elf, i, &phdr);
		if (phdr.p_type != PT_LOAD)
			continue;
		base = by_vaddr ? phdr.p_vaddr : phdr.p_paddr;
		if (range_within(base, phdr.p_memsz, addr, 1)) {
			*phys = phdr.p_paddr + (addr - base);
			return true;
		}
	}
	return false;
}

/*
 * Looks for the PVH note in one PT_NOTE segment's bytes. Sets *@found and
 * *@entry when it is there; fails on a malformed note.
 */
static int scan_notes(const uint8_t *notes, uint64_t size, uint64_t align,
		      bool *found, uint64_t *entry, char *err, size_t err_size)
{
	uint64_t offset = 0;

	/* Notes are 4-byte aligned, 8 when the segment says so. */
	align = align == 8 ? 8 : 4;
	while (offset <= size && size - offset >= sizeof(Elf64_Nhdr)) {
		uint64_t name_offset, desc_offset, next;
		Elf64_Nhdr nhdr;

		memcpy(&nhdr, notes + offset, sizeof(nhdr));
		/* 32-bit sizes: none of these sums can wrap a u64. */
		name_offset = offset + sizeof(nhdr);
		desc_offset = name_offset +
			      (((uint64_t)nhdr.n_namesz + align - 1) & ~(align - 1));
		next = desc_offset +
		       (((uint64_t)nhdr.n_descsz + align - 1) & ~(align - 1));
		if (desc_offset + nhdr.n_descsz > size)
			return boot_error(-ENOEXEC, err, err_size,
					  "ELF note at segment offset 0x%llx runs past its segment",
					  (unsigned long long)offset);
		if (nhdr.n_type == XEN_ELFNOTE_PHYS32_ENTRY &&
		    nhdr.n_namesz == sizeof(PVH_NOTE_NAME) &&
		    memcmp(notes + name_offset, PVH_NOTE_NAME,
			   sizeof(PVH_NOTE_NAME)) == 0) {
			uint32_t entry32;

			if (nhdr.n_descsz == sizeof(entry32)) {
				memcpy(&entry32, notes + desc_offset,
				       sizeof(entry32));
				*entry = entry32;
			} else if (nhdr.n_descsz == sizeof(*entry)) {
				memcpy(entry, notes + desc_offset,
				       sizeof(*entry));
			} else {
				return boot_error(-ENOEXEC, err, err_size,
						  "PVH note has a %u-byte entry (want 4 or 8)",
						  nhdr.n_descsz);
			}
			*found = true;
			return 0;
		}
		offset = next;
	}
	return 0;
}

static int find_pvh_entry(const struct elf_image *elf, bool *found,
			  uint64_t *entry, char *err, size_t err_size)
{
	*found = false;
	for (unsigned int i = 0; i < elf->ehdr.e_phnum && !*found; i++) {
		Elf64_Phdr phdr;
		int ret;

		read_phdr(elf, i, &phdr);
		if (phdr.p_type != PT_NOTE || phdr.p_filesz == 0)
			continue;
		if (!in_file(elf, phdr.p_offset, phdr.p_filesz))
			return boot_error(-ENOEXEC, err, err_size,
					  "ELF kernel truncated: note segment %u beyond the %zu-byte file",
					  i, elf->size);
		ret = scan_notes(elf->bytes + phdr.p_offset, phdr.p_filesz,
				 phdr.p_align, found, entry, err, err_size);
		if (ret)
			return ret;
	}
	return 0;
}

static int write_pvh_start_info(const struct guest_mem *mem,
				const struct boot_handoff *handoff, char *err,
				size_t err_size)
{
	/* The first module is the initrd (Linux's PVH entry). */
	struct hvm_modlist_entry initrd = {
		.paddr = INITRD_GPA,
		.size = handoff->initrd_size,
	};
	struct hvm_memmap_table_entry memmap[BOOT_MEMMAP_MAX] = { 0 };
	struct boot_e820_entry map[BOOT_MEMMAP_MAX];
	struct hvm_start_info info = {
		.magic = HVM_START_MAGIC,
		.version = HVM_START_VERSION,
		.cmdline_paddr = CMDLINE_GPA,
		.memmap_paddr = PVH_MEMMAP_GPA,
	};
	unsigned int nr_entries;
	int ret;

	ret = boot_memory_map(mem, map, &nr_entries, err, err_size);
	if (ret)
		return ret;
	for (unsigned int i = 0; i < nr_entries; i++) {
		memmap[i].addr = map[i].addr;
		memmap[i].size = map[i].size;
		memmap[i].type = map[i].type;
	}
	info.memmap_entries = nr_entries;
	if (handoff->initrd) {
		info.nr_modules = 1;
		info.modlist_paddr = PVH_MODLIST_GPA;
	}
	if (guest_mem_write(mem, PVH_START_INFO_GPA, &info, sizeof(info)) ||
	    guest_mem_write(mem, PVH_MEMMAP_GPA, memmap,
			    nr_entries * sizeof(memmap[0])) ||
	    (handoff->initrd &&
	     guest_mem_write(mem, PVH_MODLIST_GPA, &initrd, sizeof(initrd))))
		return boot_error(-EFAULT, err, err_size,
				  "guest RAM does not cover the PVH start info at 0x%x",
				  PVH_START_INFO_GPA);
	return 0;
}

/* The 64-bit entry's zero page: a vmlinux has no setup header to copy. */
static int write_elf_zero_page(const struct guest_mem *mem,
			       const struct boot_handoff *handoff, char *err,
			       size_t err_size)
{
	struct boot_params zero_page = { 0 };

	zero_page.hdr.boot_flag = BZIMAGE_BOOT_FLAG;
	zero_page.hdr.header = BZIMAGE_HDR_MAGIC;
	return boot_write_zero_page(mem, &zero_page, handoff, err, err_size);
}

int boot_load_elf(const struct guest_mem *mem, const void *image,
		  size_t image_size, const struct boot_handoff *handoff,
		  struct boot_entry *entry, char *err, size_t err_size)
{
	struct elf_image elf = { .bytes = image, .size = image_size };
	uint64_t pvh_entry, rip;
	bool has_pvh;
	int ret;

	ret = check_elf_header(&elf, err, err_size);
	if (ret)
		return ret;
	ret = check_segments(mem, &elf, err, err_size);
	if (ret)
		return ret;
	ret = find_pvh_entry(&elf, &has_pvh, &pvh_entry, err, err_size);
	if (ret)
		return ret;
	/*
	 * A vmlinux's e_entry is startup_64's physical address; other ELF
	 * kernels give a virtual one, which their p_vaddr -> p_paddr maps.
	 */
	if (has_pvh) {
		if (!segment_address(&elf, pvh_entry, false, &rip))
			return boot_error(-ENOEXEC, err, err_size,
					  "PVH entry 0x%llx is in no loadable segment",
					  (unsigned long long)pvh_entry);
	} else if (!segment_address(&elf, elf.ehdr.e_entry, false, &rip) &&
		   !segment_address(&elf, elf.ehdr.e_entry, true, &rip)) {
		return boot_error(-ENOEXEC, err, err_size,
				  "ELF entry 0x%llx is in no loadable segment",
				  (unsigned long long)elf.ehdr.e_entry);
	}
	ret = boot_write_cmdline(mem, handoff->cmdline, BOOT_X86_CMDLINE_MAX, err,
				 err_size);
	if (ret)
		return ret;
	ret = boot_write_initrd(mem, handoff, err, err_size);
	if (ret)
		return ret;
	ret = load_segments(mem, &elf, err, err_size);
	if (ret)
		return ret;
	ret = has_pvh ? write_pvh_start_info(mem, handoff, err, err_size) :
			write_elf_zero_page(mem, handoff, err, err_size);
	if (ret)
		return ret;
	*entry = (struct boot_entry){
		.mode = has_pvh ? BOOT_ENTRY_PVH : BOOT_ENTRY_64BIT,
		.rip = rip,
		.boot_info_gpa = has_pvh ? PVH_START_INFO_GPA : ZERO_PAGE_GPA,
	};
	return 0;
}
