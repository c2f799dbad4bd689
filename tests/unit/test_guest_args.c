/*
 * Unit tests for vmm/guest_args.c: what vmm-run puts on the kernel command
 * line must decode, word by word in guest-init, to the very same argv.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/guest_abi.h"
#include "vmm/guest_args.h"

#define BASE_LINE "console=ttyS0 reboot=k ro init=/sbin/init"
#define WORD_BYTES "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" \
		   "0123456789-_./:,=+@% "
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Encodes @argv after BASE_LINE, then splits the part after " -- " on
 * spaces as the kernel does, decodes every word and compares the result
 * with @argv.
 */
static void assert_round_trip(char *const argv[], int argc)
{
	char line[GUEST_CMDLINE_SIZE] = BASE_LINE;
	char *words, *word, *save;
	int len, i = 0;

	len = guest_args_encode(line, sizeof(line), argv, argc);
	assert_int_equal(len, strlen(line));
	assert_memory_equal(line, BASE_LINE " -- ", strlen(BASE_LINE " -- "));

	words = line + strlen(BASE_LINE " -- ");
	/* Nothing the kernel would split, unquote or reinterpret. */
	assert_int_equal(strspn(words, WORD_BYTES), strlen(words));

	for (word = strtok_r(words, " ", &save); word;
	     word = strtok_r(NULL, " ", &save), i++) {
		assert_true(i < argc);
		assert_int_equal(word[0], '%');
		assert_int_equal(guest_args_decode(word), 0);
		assert_string_equal(word, argv[i]);
	}
	assert_int_equal(i, argc);
}

static void test_encodes_known_example(void **state)
{
	char *argv[] = { "sh", "-c", "echo \"a b\"" };
	char line[64] = "";

	(void)state;
	assert_int_equal(guest_args_encode(line, sizeof(line), argv, 3), 33);
	assert_string_equal(line, "-- %73h %2Dc %65cho%20%22a%20b%22");
}

static void test_appends_after_existing_line(void **state)
{
	char *argv[] = { "/bin/true", "", "--" };
	char line[64] = "ro init=/sbin/init";

	(void)state;
	assert_int_equal(guest_args_encode(line, sizeof(line), argv, 3),
			 strlen("ro init=/sbin/init -- %2Fbin/true % %2D-"));
	assert_string_equal(line, "ro init=/sbin/init -- %2Fbin/true % %2D-");
}

static void test_round_trips_tricky_arguments(void **state)
{
	char *argv[] = {
		"sh", "-c", "printf '%s\\n' \"$@\"", "--", "-", "",
		"a b", "  lead and trail  ", "tab\there", "new\nline",
		"'single'", "\"double\"", "%", "%%", "%41", "100%",
		"a=b", "=", "key=\"v a l\"", "nopti", "init=/bin/sh",
		"\xc3\xa9t\xc3\xa9", "\x01\x7f\x80\xff", "plain-_./:,=+@",
		"", "$HOME;`id`|&<>(){}[]*?!#~^\\",
	};

	(void)state;
	assert_round_trip(argv, ARRAY_LEN(argv));
}

static void test_round_trips_every_byte(void **state)
{
	char all[255], *argv[1] = { all };

	(void)state;
	for (int i = 0; i < 255; i++)
		all[i] = (char)(255 - i); /* 255 down to 1, then the NUL */
	all[254] = '\0';
	assert_round_trip(argv, 1);
	for (int c = 1; c < 256; c++) {
		char one[2] = { (char)c, '\0' }, *one_argv[1] = { one };

		assert_round_trip(one_argv, 1);
	}
}

static void test_fills_the_longest_line(void **state)
{
	/* "x...x" encodes as "%78x...x": two bytes longer than itself. */
	static char arg[GUEST_CMDLINE_SIZE];
	size_t room = GUEST_CMDLINE_SIZE - 1 - strlen(BASE_LINE " -- ");
	char line[GUEST_CMDLINE_SIZE] = BASE_LINE;
	char *argv[1] = { arg };

	(void)state;
	memset(arg, 'x', room - 2);
	assert_round_trip(argv, 1);
	arg[room - 2] = 'x';
	assert_int_equal(guest_args_encode(line, sizeof(line), argv, 1), -ENOSPC);
	assert_string_equal(line, BASE_LINE);
}

static void test_needs_room_for_the_nul(void **state)
{
	char *argv[] = { "ab", "" };
	char line[16] = "x";

	(void)state;
	/* "x -- %61b %" is 11 bytes; 12 with the NUL. */
	assert_int_equal(guest_args_encode(line, 11, argv, 2), -ENOSPC);
	assert_string_equal(line, "x");
	assert_int_equal(guest_args_encode(line, 12, argv, 2), 11);
	assert_string_equal(line, "x -- %61b %");
}

static void test_refuses_too_long_argument(void **state)
{
	static char line[GUEST_CMDLINE_SIZE] = BASE_LINE;
	static char arg[GUEST_CMDLINE_SIZE];
	char *argv[] = { "echo", arg };

	(void)state;
	memset(arg, 'x', sizeof(arg) - 1);
	assert_int_equal(guest_args_encode(line, sizeof(line), argv, 2), -ENOSPC);
	assert_string_equal(line, BASE_LINE);
}

static void test_refuses_bad_argument_lists(void **state)
{
	char *argv[GUEST_ARGS_MAX + 1];
	char line[GUEST_CMDLINE_SIZE] = "ro";
	char full[4] = { 'a', 'b', 'c', 'd' };

	(void)state;
	for (int i = 0; i < GUEST_ARGS_MAX + 1; i++)
		argv[i] = "a";
	assert_int_equal(guest_args_encode(line, sizeof(line), argv, 0), -EINVAL);
	assert_int_equal(guest_args_encode(line, sizeof(line), argv,
					   GUEST_ARGS_MAX + 1), -E2BIG);
	assert_string_equal(line, "ro");
	argv[1] = NULL;
	assert_int_equal(guest_args_encode(line, sizeof(line), argv, 2), -EINVAL);
	assert_string_equal(line, "ro");
	assert_int_equal(guest_args_encode(full, sizeof(full), argv, 1), -EINVAL);
	argv[1] = "a";
	assert_round_trip(argv, GUEST_ARGS_MAX);
}

static void test_decoder_rejects_bad_words(void **state)
{
	const char *bad[] = {
		"", "a", "abc", "-", "--", "%G1", "%1G", "%0", "%4", "%41%",
		"%41%4", "%00", "%41%00", "%2f", "%2d-", "%%", "%41 b", "%41\"",
		"%41\x80", "%41\t", "%41%zz",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char word[16];

		strcpy(word, bad[i]);
		if (guest_args_decode(word) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_string_equal(word, bad[i]);
	}
}

static void test_decoder_accepts_any_escape(void **state)
{
	char word[] = "%41%42c%2D%7E";

	(void)state;
	assert_int_equal(guest_args_decode(word), 0);
	assert_string_equal(word, "ABc-~");
}

static void test_flag_round_trip(void **state)
{
	char line[GUEST_CMDLINE_SIZE] = BASE_LINE;
	char *argv[] = { "sh" };

	(void)state;
	assert_false(guest_args_has_flag(line, GUEST_FLAG_INTERACTIVE));
	assert_int_equal(guest_args_add_flag(line, sizeof(line), GUEST_FLAG_INTERACTIVE),
			 strlen(BASE_LINE " " GUEST_FLAG_INTERACTIVE));
	assert_string_equal(line, BASE_LINE " " GUEST_FLAG_INTERACTIVE);
	assert_true(guest_args_has_flag(line, GUEST_FLAG_INTERACTIVE));
	/* Still found once the command follows; the kernel adds a newline. */
	assert_true(guest_args_encode(line, sizeof(line), argv, 1) > 0);
	strcat(line, "\n");
	assert_true(guest_args_has_flag(line, GUEST_FLAG_INTERACTIVE));
}

static void test_flag_is_a_whole_word_before_the_command(void **state)
{
	(void)state;
	assert_true(guest_args_has_flag("erovm.interactive", "erovm.interactive"));
	assert_true(guest_args_has_flag("  a\terovm.interactive  b", "erovm.interactive"));
	/* Quotes are stripped as the kernel strips them. */
	assert_true(guest_args_has_flag("a \"erovm.interactive\"", "erovm.interactive"));
	/* Parts of words, values and longer words are not the flag. */
	assert_false(guest_args_has_flag("erovm.interactiv", "erovm.interactive"));
	assert_false(guest_args_has_flag("erovm.interactive=0", "erovm.interactive"));
	assert_false(guest_args_has_flag("xerovm.interactive", "erovm.interactive"));
	assert_false(guest_args_has_flag("a=\"x erovm.interactive\"", "erovm.interactive"));
	/* After "--" it is the command's, not a flag (even quoted "--"). */
	assert_false(guest_args_has_flag("a -- erovm.interactive", "erovm.interactive"));
	assert_false(guest_args_has_flag("a \"--\" erovm.interactive", "erovm.interactive"));
	assert_true(guest_args_has_flag("a --x erovm.interactive", "erovm.interactive"));
	assert_false(guest_args_has_flag("", "erovm.interactive"));
}

static void test_flag_needs_room(void **state)
{
	char line[24] = "console=ttyS0";
	char full[4] = { 'a', 'b', 'c', 'd' };

	(void)state;
	/* " erovm.interactive" and the NUL need 19 bytes; 24 - 13 is too few. */
	assert_int_equal(guest_args_add_flag(line, sizeof(line), GUEST_FLAG_INTERACTIVE),
			 -ENOSPC);
	assert_string_equal(line, "console=ttyS0");
	assert_int_equal(guest_args_add_flag(full, sizeof(full), "x"), -EINVAL);
	line[0] = '\0';
	assert_int_equal(guest_args_add_flag(line, sizeof(line), GUEST_FLAG_INTERACTIVE),
			 17);
	assert_string_equal(line, GUEST_FLAG_INTERACTIVE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encodes_known_example),
		cmocka_unit_test(test_appends_after_existing_line),
		cmocka_unit_test(test_round_trips_tricky_arguments),
		cmocka_unit_test(test_round_trips_every_byte),
		cmocka_unit_test(test_fills_the_longest_line),
		cmocka_unit_test(test_needs_room_for_the_nul),
		cmocka_unit_test(test_refuses_too_long_argument),
		cmocka_unit_test(test_refuses_bad_argument_lists),
		cmocka_unit_test(test_decoder_rejects_bad_words),
		cmocka_unit_test(test_decoder_accepts_any_escape),
		cmocka_unit_test(test_flag_round_trip),
		cmocka_unit_test(test_flag_is_a_whole_word_before_the_command),
		cmocka_unit_test(test_flag_needs_room),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
