/*
 * Unit tests for vmm/bootconfig.c: the block must be what the kernel's
 * get_boot_config_from_initrd() accepts (magic at the end, size, byte-sum
 * checksum, 4-byte padding) and its text the one line it turns into
 * command-line parameters.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/bootconfig.h"

static uint32_t get_le32(const char *p)
{
	const unsigned char *b = (const unsigned char *)p;

	return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

/*
 * Reads @block back the way Linux 6.12 does for an initrd that is exactly
 * @len bytes: returns the text (NUL-terminated inside the block).
 */
static const char *kernel_view(const char *block, int len)
{
	const char *hdr, *data;
	uint32_t size, checksum = 0;

	assert_true(len >= BOOTCONFIG_MAGIC_LEN + 8);
	assert_memory_equal(block + len - BOOTCONFIG_MAGIC_LEN, BOOTCONFIG_MAGIC,
			    BOOTCONFIG_MAGIC_LEN);
	hdr = block + len - BOOTCONFIG_MAGIC_LEN - 8;
	size = get_le32(hdr);
	assert_true(size <= BOOTCONFIG_DATA_MAX);
	/* Nothing before the block: the initrd left to unpack is empty. */
	assert_int_equal(size, hdr - block);
	assert_int_equal(size % 4, 0);
	data = hdr - size;
	for (uint32_t i = 0; i < size; i++)
		checksum += (unsigned char)data[i];
	assert_int_equal(checksum, get_le32(hdr + 4));
	assert_non_null(memchr(data, '\0', size));
	return data;
}

static void test_block_layout_and_text(void **state)
{
	const char *values[] = { "512@0xd0000000:5", "512@0xd0001000:6" };
	char block[256];
	int len;

	(void)state;
	len = bootconfig_build(block, sizeof(block), "virtio_mmio.device", values, 2);
	assert_true(len > 0);
	assert_string_equal(kernel_view(block, len),
			    "kernel.virtio_mmio.device = \"512@0xd0000000:5\", "
			    "\"512@0xd0001000:6\"\n");
}

static void test_padding_for_every_text_length(void **state)
{
	char value[8] = "";
	char block[128];

	(void)state;
	/* Text lengths n..n+4 cover every remainder mod 4, including 0. */
	for (int n = 1; n <= 5; n++) {
		const char *values[] = { value };
		int len;

		memset(value, 'a', n);
		value[n] = '\0';
		len = bootconfig_build(block, sizeof(block), "k", values, 1);
		assert_true(len > 0);
		kernel_view(block, len);
	}
}

static void test_many_values(void **state)
{
	static char storage[200][24];
	const char *values[200];
	static char block[BOOTCONFIG_BLOCK_MAX];
	const char *text;
	int len;

	(void)state;
	for (int i = 0; i < 200; i++) {
		snprintf(storage[i], sizeof(storage[i]), "512@0x%x:%d",
			 0xd0000000 + i * 0x1000, 5 + i % 9);
		values[i] = storage[i];
	}
	len = bootconfig_build(block, sizeof(block), "virtio_mmio.device", values, 200);
	assert_true(len > 0);
	text = kernel_view(block, len);
	assert_non_null(strstr(text, "\"512@0xd00c7000:6\"\n"));
}

static void test_rejects_bad_names_and_values(void **state)
{
	const char *good[] = { "v" };
	const char *quote[] = { "a\"b" };
	const char *apostrophe[] = { "a'b" };
	const char *comment[] = { "a#b" };
	const char *newline[] = { "a\nb" };
	const char *empty[] = { "" };
	char block[128];

	(void)state;
	assert_int_equal(bootconfig_build(block, sizeof(block), "", good, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), ".a", good, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "a.", good, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "a..b", good, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "a b", good, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "a=b", good, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "k", good, 0), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "k", quote, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "k", apostrophe, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "k", comment, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "k", newline, 1), -EINVAL);
	assert_int_equal(bootconfig_build(block, sizeof(block), "k", empty, 1), -EINVAL);
}

static void test_too_big(void **state)
{
	static char big[BOOTCONFIG_DATA_MAX];
	const char *values[] = { big };
	static char block[BOOTCONFIG_BLOCK_MAX + 100];
	const char *small[] = { "0123456789" };
	int len;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	/* The text alone exceeds the kernel's limit, whatever the buffer. */
	assert_int_equal(bootconfig_build(block, sizeof(block), "k", values, 1), -E2BIG);
	/* A block one byte larger than the buffer. */
	len = bootconfig_build(block, sizeof(block), "k", small, 1);
	assert_true(len > 0);
	assert_int_equal(bootconfig_build(block, len - 1, "k", small, 1), -E2BIG);
	assert_int_equal(bootconfig_build(block, len, "k", small, 1), len);
	assert_int_equal(bootconfig_build(block, 0, "k", small, 1), -E2BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_layout_and_text),
		cmocka_unit_test(test_padding_for_every_text_length),
		cmocka_unit_test(test_many_values),
		cmocka_unit_test(test_rejects_bad_names_and_values),
		cmocka_unit_test(test_too_big),
	};

	return cmocka_run_group_tests_name("bootconfig", tests, NULL, NULL);
}
