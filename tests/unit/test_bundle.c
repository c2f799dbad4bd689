/* Unit tests for guest-init/bundle.c: bundle paths, JSON objects, pid lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "guest-init/bundle.h"

static void test_relative_paths_inside_pass(void **state)
{
	(void)state;
	assert_null(bundle_check_path("resolv.conf"));
	assert_null(bundle_check_path("etc/hosts"));
	assert_null(bundle_check_path("a/b/c..d/.hidden"));
	assert_null(bundle_check_path("config.json.d/x"));
	assert_null(bundle_check_path("dir/config.json"));
}

static void test_paths_leaving_the_bundle_fail(void **state)
{
	char long_path[BUNDLE_PATH_MAX + 2];

	(void)state;
	assert_string_equal(bundle_check_path("/etc/passwd"), "is absolute");
	assert_string_equal(bundle_check_path(""), "is empty");
	assert_non_null(bundle_check_path(".."));
	assert_non_null(bundle_check_path("../x"));
	assert_non_null(bundle_check_path("a/../../x"));
	assert_non_null(bundle_check_path("a/.."));
	assert_non_null(bundle_check_path("./a"));
	assert_string_equal(bundle_check_path("a//b"), "has an empty component");
	assert_string_equal(bundle_check_path("a/"), "has an empty component");
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';
	assert_string_equal(bundle_check_path(long_path), "is too long");
}

static void test_the_bundles_own_files_are_refused(void **state)
{
	(void)state;
	assert_non_null(bundle_check_path("config.json"));
	assert_non_null(bundle_check_path(".erovm"));
	assert_non_null(bundle_check_path(".erovm/init.pid"));
	assert_null(bundle_check_path(".erovmx"));
}

static bool is_object(const char *text)
{
	return bundle_json_is_object((const uint8_t *)text, strlen(text));
}

static void test_json_objects_pass(void **state)
{
	(void)state;
	assert_true(is_object("{}"));
	assert_true(is_object(" \n{ \"a\" : 1 }\t\n"));
	assert_true(is_object("{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"sh\",\"-c\",\"x\"],"
			      "\"terminal\":false,\"n\":null,\"t\":true,\"num\":-1.5e+10,\"z\":0,"
			      "\"e\":[],\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"}}"));
}

/* {"a":[[...]]} with @arrays arrays, built in @buf. */
static bool nested_object(char *buf, int arrays)
{
	size_t n = 0;

	memcpy(buf, "{\"a\":", 5);
	n = 5;
	for (int i = 0; i < arrays; i++)
		buf[n++] = '[';
	for (int i = 0; i < arrays; i++)
		buf[n++] = ']';
	buf[n++] = '}';
	return bundle_json_is_object((const uint8_t *)buf, n);
}

static void test_other_json_and_junk_fail(void **state)
{
	char deep[2 * BUNDLE_JSON_DEPTH_MAX + 8];

	(void)state;
	assert_false(is_object(""));
	assert_false(is_object("[]"));
	assert_false(is_object("\"text\""));
	assert_false(is_object("{"));
	assert_false(is_object("{\"a\":1,}"));
	assert_false(is_object("{\"a\" 1}"));
	assert_false(is_object("{a:1}"));
	assert_false(is_object("{} {}"));
	assert_false(is_object("{\"a\":01}"));
	assert_false(is_object("{\"a\":1.}"));
	assert_false(is_object("{\"a\":tru}"));
	assert_false(is_object("{\"a\":\"\\x\"}"));
	assert_false(is_object("{\"a\":\"\\u12\"}"));
	assert_false(is_object("{\"a\":\"line\nbreak\"}"));
	assert_false(bundle_json_is_object((const uint8_t *)"{\"a\":1}", 6));
	assert_false(bundle_json_is_object((const uint8_t *)"{}\0", 3));
	/* Nesting deeper than the limit is refused, not followed. */
	assert_true(nested_object(deep, BUNDLE_JSON_DEPTH_MAX - 1));
	assert_false(nested_object(deep, BUNDLE_JSON_DEPTH_MAX));
}

static void test_pid_lists_parse(void **state)
{
	uint32_t pids[4];

	(void)state;
	assert_int_equal(bundle_parse_pids("[]\n", pids, 4), 0);
	assert_int_equal(bundle_parse_pids("[\n  36,\n  47\n]\n", pids, 4), 2);
	assert_int_equal(pids[0], 36);
	assert_int_equal(pids[1], 47);
	/* More than fit: counted, the first ones kept. */
	assert_int_equal(bundle_parse_pids("[1,2,3,4,5,6]", pids, 4), 6);
	assert_int_equal(pids[3], 4);
	assert_int_equal(bundle_parse_pids("[7]", NULL, 0), 1);
	assert_int_equal(bundle_parse_pids("[2147483647]", pids, 4), 1);
	assert_int_equal(pids[0], 2147483647u);
}

static void test_bad_pid_lists_fail(void **state)
{
	uint32_t pids[4];

	(void)state;
	assert_int_equal(bundle_parse_pids("", pids, 4), -1);
	assert_int_equal(bundle_parse_pids("[1,]", pids, 4), -1);
	assert_int_equal(bundle_parse_pids("[0]", pids, 4), -1);
	assert_int_equal(bundle_parse_pids("[-1]", pids, 4), -1);
	assert_int_equal(bundle_parse_pids("[2147483648]", pids, 4), -1);
	assert_int_equal(bundle_parse_pids("[1] x", pids, 4), -1);
	assert_int_equal(bundle_parse_pids("{\"pid\":1}", pids, 4), -1);
	assert_int_equal(bundle_parse_pids("[1 2]", pids, 4), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relative_paths_inside_pass),
		cmocka_unit_test(test_paths_leaving_the_bundle_fail),
		cmocka_unit_test(test_the_bundles_own_files_are_refused),
		cmocka_unit_test(test_json_objects_pass),
		cmocka_unit_test(test_other_json_and_junk_fail),
		cmocka_unit_test(test_pid_lists_parse),
		cmocka_unit_test(test_bad_pid_lists_fail),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
