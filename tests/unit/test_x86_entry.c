/* Unit tests for vmm/x86_entry.c: registers, GDT and page tables. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/layout.h"
#include "vmm/x86_entry.h"

#define RAM_SIZE 0x100000

struct fixture {
	struct guest_mem mem;
	uint8_t *ram;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->ram = calloc(1, RAM_SIZE);
	if (!f->ram || guest_mem_add_region(&f->mem, 0, RAM_SIZE, f->ram))
		return -1;
	/* Some of what KVM_GET_SREGS returns after reset, plus stale values. */
	f->sregs.cr0 = 0x60000010;
	f->sregs.cr4 = 0x80;
	f->sregs.efer = 0x1;
	f->sregs.apic_base = 0xfee00900;
	f->sregs.idt.limit = 0xffff;
	f->sregs.interrupt_bitmap[0] = 0x1234;
	memset(&f->regs, 0x5a, sizeof(f->regs));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->ram);
	free(f);
	return 0;
}

static uint64_t get64(const uint8_t *p, size_t off) { uint64_t v; memcpy(&v, p + off, 8); return v; }

static void assert_flat_segment(const struct kvm_segment *s, uint16_t selector,
				uint8_t type, uint8_t db, uint8_t l)
{
	assert_int_equal(s->base, 0);
	assert_int_equal(s->limit, 0xffffffff);
	assert_int_equal(s->selector, selector);
	assert_int_equal(s->type, type);
	assert_int_equal(s->present, 1);
	assert_int_equal(s->dpl, 0);
	assert_int_equal(s->db, db);
	assert_int_equal(s->s, 1);
	assert_int_equal(s->l, l);
	assert_int_equal(s->g, 1);
	assert_int_equal(s->unusable, 0);
}

static void assert_common_state(const struct fixture *f)
{
	const struct kvm_sregs *s = &f->sregs;

	assert_int_equal(s->gdt.base, GDT_GPA);
	assert_int_equal(s->gdt.limit, 6 * 8 - 1);
	assert_flat_segment(&s->ds, 0x18, 0x3, 1, 0);
	assert_flat_segment(&s->es, 0x18, 0x3, 1, 0);
	assert_flat_segment(&s->ss, 0x18, 0x3, 1, 0);
	assert_int_equal(s->tr.selector, 0x20);
	assert_int_equal(s->tr.base, 0);
	assert_int_equal(s->tr.limit, 0x67);
	assert_int_equal(s->tr.type, 11);
	assert_int_equal(s->tr.present, 1);
	assert_int_equal(s->tr.s, 0);
	/* Untouched. */
	assert_int_equal(s->apic_base, 0xfee00900);
	assert_int_equal(s->idt.limit, 0xffff);
	assert_int_equal(s->interrupt_bitmap[0], 0x1234);

	assert_int_equal(get64(f->ram, GDT_GPA + 0x00), 0);
	assert_int_equal(get64(f->ram, GDT_GPA + 0x08), 0);
	assert_int_equal(get64(f->ram, GDT_GPA + 0x18), 0x00cf93000000ffff);
	assert_int_equal(get64(f->ram, GDT_GPA + 0x20), 0x00008b0000000067);
	assert_int_equal(get64(f->ram, GDT_GPA + 0x28), 0);

	assert_int_equal(f->regs.rflags, 2);
	assert_int_equal(f->regs.rax, 0);
	assert_int_equal(f->regs.rsp, 0);
	assert_int_equal(f->regs.rdi, 0);
}

static void test_64bit_entry(void **state)
{
	struct fixture *f = *state;
	const struct boot_entry entry = {
		.mode = BOOT_ENTRY_64BIT, .rip = 0x1000200,
		.boot_info_gpa = ZERO_PAGE_GPA,
	};

	assert_int_equal(x86_entry_setup(&f->mem, &entry, &f->sregs, &f->regs), 0);
	assert_common_state(f);
	assert_int_equal(f->sregs.cr0, 0x80000031);
	assert_int_equal(f->sregs.cr3, PML4_GPA);
	assert_int_equal(f->sregs.cr4, 0x20);
	assert_int_equal(f->sregs.efer, 0x500);
	assert_flat_segment(&f->sregs.cs, 0x10, 0xb, 0, 1);
	assert_int_equal(get64(f->ram, GDT_GPA + 0x10), 0x00af9b000000ffff);
	assert_int_equal(f->regs.rip, 0x1000200);
	assert_int_equal(f->regs.rsi, ZERO_PAGE_GPA);
	assert_int_equal(f->regs.rbx, 0);

	assert_int_equal(get64(f->ram, PML4_GPA), PDPT_GPA | 0x3);
	for (unsigned int i = 1; i < 512; i++)
		assert_int_equal(get64(f->ram, PML4_GPA + i * 8), 0);
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(get64(f->ram, PDPT_GPA + i * 8),
				 (PD_GPA + i * 0x1000) | 0x3);
	assert_int_equal(get64(f->ram, PDPT_GPA + 4 * 8), 0);
	for (unsigned int i = 0; i < 4 * 512; i++)
		assert_int_equal(get64(f->ram, PD_GPA + i * 8),
				 ((uint64_t)i << 21) | 0x83);
	assert_int_equal(get64(f->ram, PD_GPA + 2047 * 8), 0xffe00083);
}

static void test_pvh_entry(void **state)
{
	struct fixture *f = *state;
	const struct boot_entry entry = {
		.mode = BOOT_ENTRY_PVH, .rip = 0x1000040,
		.boot_info_gpa = PVH_START_INFO_GPA,
	};

	assert_int_equal(x86_entry_setup(&f->mem, &entry, &f->sregs, &f->regs), 0);
	assert_common_state(f);
	assert_int_equal(f->sregs.cr0, 0x11);
	assert_int_equal(f->sregs.cr3, 0);
	assert_int_equal(f->sregs.cr4, 0);
	assert_int_equal(f->sregs.efer, 0);
	assert_flat_segment(&f->sregs.cs, 0x10, 0xb, 1, 0);
	assert_int_equal(get64(f->ram, GDT_GPA + 0x10), 0x00cf9b000000ffff);
	assert_int_equal(f->regs.rip, 0x1000040);
	assert_int_equal(f->regs.rbx, PVH_START_INFO_GPA);
	assert_int_equal(f->regs.rsi, 0);
	/* No page tables for PVH. */
	assert_int_equal(get64(f->ram, PML4_GPA), 0);
}

static void test_refuses_unreachable_entries(void **state)
{
	struct fixture *f = *state;
	struct boot_entry entry = {
		.mode = BOOT_ENTRY_64BIT, .rip = IDENTITY_MAP_END,
		.boot_info_gpa = ZERO_PAGE_GPA,
	};
	struct guest_mem tiny = { 0 };

	assert_int_equal(x86_entry_setup(&f->mem, &entry, &f->sregs, &f->regs), -EINVAL);
	entry.mode = BOOT_ENTRY_PVH;
	entry.rip = 0x100000000ull;
	assert_int_equal(x86_entry_setup(&f->mem, &entry, &f->sregs, &f->regs), -EINVAL);
	entry.mode = (enum boot_entry_mode)7;
	entry.rip = 0x100000;
	assert_int_equal(x86_entry_setup(&f->mem, &entry, &f->sregs, &f->regs), -EINVAL);

	/* RAM that ends inside the page tables. */
	assert_int_equal(guest_mem_add_region(&tiny, 0, PD_GPA + 0x1000, f->ram), 0);
	entry.mode = BOOT_ENTRY_64BIT;
	assert_int_equal(x86_entry_setup(&tiny, &entry, &f->sregs, &f->regs), -EFAULT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_64bit_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pvh_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_unreachable_entries, setup, teardown),
	};

	return cmocka_run_group_tests_name("x86_entry", tests, NULL, NULL);
}
