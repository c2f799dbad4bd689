/*
 * Unit tests for vmm/mptable.c: the tables are parsed back with the MP
 * spec 1.4 offsets, the way a kernel reads them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/layout.h"
#include "vmm/mptable.h"

#define RAM_SIZE 0x100000

static uint16_t get16(const uint8_t *p, size_t off) { uint16_t v; memcpy(&v, p + off, 2); return v; }
static uint32_t get32(const uint8_t *p, size_t off) { uint32_t v; memcpy(&v, p + off, 4); return v; }

static uint8_t byte_sum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return sum;
}

/* An 8-byte interrupt assignment entry (types 3 and 4). */
static void assert_interrupt(const uint8_t *e, uint8_t type, uint8_t irq_type,
			     uint8_t src_irq, uint8_t dst_apic, uint8_t dst_pin)
{
	assert_int_equal(e[0], type);
	assert_int_equal(e[1], irq_type);
	assert_int_equal(get16(e, 2), 0);  /* conforming polarity and trigger */
	assert_int_equal(e[4], 0);         /* ISA bus id */
	assert_int_equal(e[5], src_irq);
	assert_int_equal(e[6], dst_apic);
	assert_int_equal(e[7], dst_pin);
}

static void check_tables(unsigned int ncpus)
{
	uint8_t *ram = calloc(1, RAM_SIZE);
	struct guest_mem mem = { 0 };
	const uint8_t *fp, *table, *e;
	uint32_t table_gpa;
	uint16_t length;

	assert_non_null(ram);
	assert_int_equal(guest_mem_add_region(&mem, 0, RAM_SIZE, ram), 0);
	assert_int_equal(mptable_write(&mem, ncpus), 0);

	/* Where Linux scans: the last KiB below 640 KiB. */
	assert_true(EBDA_GPA >= 0x9fc00 && EBDA_GPA + 16 <= 0xa0000);
	fp = ram + EBDA_GPA;
	assert_memory_equal(fp, "_MP_", 4);
	assert_int_equal(fp[8], 1);                /* 16 bytes */
	assert_int_equal(fp[9], 4);                /* spec 1.4 */
	assert_int_equal(fp[11], 0);               /* config table present */
	assert_int_equal(byte_sum(fp, 16), 0);
	table_gpa = get32(fp, 4);
	assert_int_equal(table_gpa, EBDA_GPA + 16);

	table = ram + table_gpa;
	length = get16(table, 4);
	assert_memory_equal(table, "PCMP", 4);
	assert_int_equal(length, 44 + 20 * ncpus + 8 + 8 + 16 * 8 + 2 * 8);
	assert_true(table_gpa + length <= HIMEM_GPA);     /* e820-reserved */
	assert_int_equal(table[6], 4);
	assert_int_equal(byte_sum(table, length), 0);
	assert_int_equal(get16(table, 34), ncpus + 2 + 16 + 2);
	assert_int_equal(get32(table, 36), 0xfee00000);
	assert_int_equal(get16(table, 40), 0);     /* no extended table */

	e = table + 44;
	for (unsigned int cpu = 0; cpu < ncpus; cpu++, e += 20) {
		assert_int_equal(e[0], 0);
		assert_int_equal(e[1], cpu);
		assert_int_equal(e[2], 0x14);
		assert_int_equal(e[3], cpu == 0 ? 0x3 : 0x1);
	}
	assert_int_equal(e[0], 1);
	assert_int_equal(e[1], 0);
	assert_memory_equal(e + 2, "ISA   ", 6);
	e += 8;
	assert_int_equal(e[0], 2);
	assert_int_equal(e[1], ncpus);
	assert_int_equal(e[2], 0x11);
	assert_int_equal(e[3], 1);
	assert_int_equal(get32(e, 4), 0xfec00000);
	e += 8;
	for (unsigned int irq = 0; irq < 16; irq++, e += 8)
		assert_interrupt(e, 3, 0, irq, ncpus, irq);
	assert_interrupt(e, 4, 3, 0, 0xff, 0);      /* ExtINT on LINT0 */
	assert_interrupt(e + 8, 4, 1, 0, 0xff, 1);  /* NMI on LINT1 */
	assert_ptr_equal(e + 16, table + length);
	free(ram);
}

static void test_one_cpu(void **state)
{
	(void)state;
	check_tables(1);
}

static void test_several_cpus(void **state)
{
	(void)state;
	check_tables(2);
	check_tables(4);
	check_tables(64);   /* vmm-run --cpus' maximum; past 640 KiB */
}

static void test_refuses_bad_cpu_counts_and_missing_ram(void **state)
{
	uint8_t *ram = calloc(1, EBDA_GPA + 64);
	struct guest_mem mem = { 0 };

	(void)state;
	assert_non_null(ram);
	assert_int_equal(guest_mem_add_region(&mem, 0, EBDA_GPA + 64, ram), 0);
	assert_int_equal(mptable_write(&mem, 0), -EINVAL);
	assert_int_equal(mptable_write(&mem, 65), -EINVAL);
	assert_int_equal(mptable_write(&mem, 1), -EFAULT);
	free(ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_cpu),
		cmocka_unit_test(test_several_cpus),
		cmocka_unit_test(test_refuses_bad_cpu_counts_and_missing_ram),
	};

	return cmocka_run_group_tests_name("mptable", tests, NULL, NULL);
}
