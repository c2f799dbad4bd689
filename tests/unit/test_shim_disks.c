/*
 * Unit tests for shim/disks.c: serials and order of the disks of a VM,
 * the 64-disk limit, extent paths, vmm-run --disk values, and the JSON
 * record a restarted shim reads back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "shim/disks.h"

static struct disk_set set;

static int setup(void **state)
{
	(void)state;
	disk_set_init(&set);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	disk_set_free(&set);
	return 0;
}

static struct disk *add(enum disk_role role, enum disk_source source, bool read_only)
{
	struct disk_spec spec = { .role = role, .source = source, .read_only = read_only };
	char err[256] = "";
	struct disk *disk;

	if (source == DISK_LAYER || source == DISK_DIRECTORY)
		spec.directory = "/layers/x";
	if (source == DISK_NEW_EXT4)
		spec.size = 1 << 20;
	disk = disk_set_add(&set, &spec, err, sizeof(err));
	if (!disk)
		fail_msg("disk_set_add: %s", err);
	return disk;
}

static void add_fails(const struct disk_spec *spec, const char *message)
{
	char err[256] = "";

	assert_null(disk_set_add(&set, spec, err, sizeof(err)));
	if (!strstr(err, message))
		fail_msg("error \"%s\", expected \"%s\"", err, message);
}

static void serials_count_per_role(void **state)
{
	(void)state;
	assert_string_equal(add(DISK_ROLE_ROOTFS, DISK_LAYER, true)->serial, "rootfs-0");
	assert_string_equal(add(DISK_ROLE_ROOTFS, DISK_NEW_EXT4, false)->serial, "rootfs-1");
	assert_string_equal(add(DISK_ROLE_VOLUME, DISK_FILES, false)->serial, "volume-0");
	assert_string_equal(add(DISK_ROLE_VOLUME, DISK_DIRECTORY, true)->serial, "volume-1");
	assert_int_equal(set.count, 4);
	assert_ptr_equal(disk_set_find(&set, "volume-1"), &set.disks[3]);
	assert_null(disk_set_find(&set, "volume-2"));

	/* Truncating hands the serials out again. */
	disk_set_truncate(&set, 1);
	assert_int_equal(set.count, 1);
	assert_string_equal(add(DISK_ROLE_ROOTFS, DISK_FILES, true)->serial, "rootfs-1");
	assert_string_equal(add(DISK_ROLE_VOLUME, DISK_FILES, true)->serial, "volume-0");
}

static void rootfs_disks_come_first(void **state)
{
	struct disk_spec rootfs = { .role = DISK_ROLE_ROOTFS, .source = DISK_FILES };

	(void)state;
	add(DISK_ROLE_VOLUME, DISK_FILES, false);
	add_fails(&rootfs, "rootfs disks come before volume disks");
	assert_int_equal(set.count, 1);
}

static void at_most_64_disks(void **state)
{
	struct disk_spec volume = { .role = DISK_ROLE_VOLUME, .source = DISK_FILES };

	(void)state;
	for (int i = 0; i < 60; i++)
		add(DISK_ROLE_ROOTFS, DISK_FILES, true);
	for (int i = 0; i < 4; i++)
		add(DISK_ROLE_VOLUME, DISK_FILES, false);
	assert_string_equal(set.disks[63].serial, "volume-3");
	add_fails(&volume, "a VM takes at most 64 disks; volume disk 4 would be one more");
	assert_int_equal(set.count, 64);
}

static void specs_must_fit_their_source(void **state)
{
	(void)state;
	add_fails(&(struct disk_spec){ .source = DISK_LAYER, .read_only = true },
		  "a layer disk needs a directory");
	add_fails(&(struct disk_spec){ .source = DISK_FILES, .directory = "/d" },
		  "a files disk takes no directory");
	add_fails(&(struct disk_spec){ .source = DISK_LAYER, .directory = "d", .read_only = true },
		  "directory \"d\" is not absolute");
	add_fails(&(struct disk_spec){ .source = DISK_LAYER, .directory = "/d" },
		  "an EROFS image disk is read-only");
	add_fails(&(struct disk_spec){ .source = DISK_NEW_EXT4 },
		  "only a new ext4 disk, and each, has a size");
	add_fails(&(struct disk_spec){ .source = DISK_FILES, .require_empty = "/u" },
		  "only a new ext4 disk requires an empty directory");
	assert_int_equal(set.count, 0);
	assert_int_equal(set.next_index[DISK_ROLE_ROOTFS], 0);
}

static void extent_paths_are_checked(void **state)
{
	struct disk *disk = add(DISK_ROLE_ROOTFS, DISK_FILES, true);
	char err[256];

	(void)state;
	assert_int_equal(disk_add_extent(disk, "relative", 0, 0, err, sizeof(err)), -1);
	assert_string_equal(err, "disk rootfs-0: file \"relative\" is not absolute");
	assert_int_equal(disk_add_extent(disk, "/a:b", 0, 0, err, sizeof(err)), -1);
	assert_int_equal(disk_add_extent(disk, "/a@b", 0, 0, err, sizeof(err)), -1);
	assert_int_equal(disk_add_extent(disk, "/x", UINT64_MAX, 2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ends past 2^64"));
	for (int i = 0; i < DISK_EXTENTS_MAX; i++)
		assert_int_equal(disk_add_extent(disk, "/blob", 0, 0, err, sizeof(err)), 0);
	assert_int_equal(disk_add_extent(disk, "/blob", 0, 0, err, sizeof(err)), -1);
	assert_string_equal(err, "disk rootfs-0: more than 128 extents");
}

static void formats_vmm_run_disk_values(void **state)
{
	struct disk *single = add(DISK_ROLE_ROOTFS, DISK_FILES, true);
	struct disk *flat = add(DISK_ROLE_ROOTFS, DISK_FILES, true);
	struct disk *rw = add(DISK_ROLE_VOLUME, DISK_FILES, false);
	char buf[256], err[256];

	(void)state;
	assert_int_equal(disk_format_arg(single, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(disk_add_extent(single, "/l/layer.erofs", 0, 0, err, sizeof(err)), 0);
	assert_int_equal(disk_format_arg(single, buf, sizeof(buf)), 33);
	assert_string_equal(buf, "/l/layer.erofs,ro,serial=rootfs-0");

	assert_int_equal(disk_add_extent(flat, "/m/fsmeta.erofs", 0, 0, err, sizeof(err)), 0);
	assert_int_equal(disk_add_extent(flat, "/b/1.erofs", 4096, 0, err, sizeof(err)), 0);
	assert_int_equal(disk_add_extent(flat, "/b/2.erofs", 0, 8192, err, sizeof(err)), 0);
	assert_true(disk_format_arg(flat, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "extents=/m/fsmeta.erofs:/b/1.erofs@4096:/b/2.erofs@0+8192,"
				 "ro,serial=rootfs-1");
	/* Every size short of the whole value is refused, never cut. */
	for (size_t size = 1; size <= strlen(buf); size++)
		assert_int_equal(disk_format_arg(flat, buf, size), -ENOSPC);

	assert_int_equal(disk_add_extent(rw, "/v/vol.img", 0, 0, err, sizeof(err)), 0);
	assert_true(disk_format_arg(rw, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "/v/vol.img,serial=volume-0");
}

static void json_round_trip(void **state)
{
	struct disk_spec upper = { .role = DISK_ROLE_ROOTFS, .source = DISK_NEW_EXT4,
				   .size = 10ULL << 30, .require_empty = "/s/9/fs" };
	struct disk *layer = add(DISK_ROLE_ROOTFS, DISK_LAYER, true);
	struct disk_set back;
	json_object *json;
	char err[256];

	(void)state;
	assert_int_equal(disk_add_extent(layer, "/cache/ab.erofs", 0, 0, err, sizeof(err)), 0);
	assert_non_null(disk_set_add(&set, &upper, err, sizeof(err)));
	add(DISK_ROLE_VOLUME, DISK_DIRECTORY, true);
	json = disk_set_to_json(&set);
	assert_non_null(json);
	if (disk_set_from_json(json, &back, err, sizeof(err)) < 0)
		fail_msg("disk_set_from_json: %s", err);
	assert_int_equal(back.count, 3);
	assert_string_equal(back.disks[0].serial, "rootfs-0");
	assert_int_equal(back.disks[0].source, DISK_LAYER);
	assert_true(back.disks[0].read_only);
	assert_string_equal(back.disks[0].directory, "/layers/x");
	assert_int_equal(back.disks[0].extent_count, 1);
	assert_string_equal(back.disks[0].extents[0].path, "/cache/ab.erofs");
	assert_int_equal(back.disks[1].size, 10ULL << 30);
	assert_string_equal(back.disks[1].require_empty, "/s/9/fs");
	assert_false(back.disks[1].read_only);
	assert_string_equal(back.disks[2].serial, "volume-0");
	assert_string_equal(back.disks[2].directory, "/layers/x");
	assert_int_equal(back.next_index[DISK_ROLE_VOLUME], 1);
	disk_set_free(&back);
	json_object_put(json);
}

static void from_json_fails(const char *text, const char *message)
{
	json_object *json = json_tokener_parse(text);
	struct disk_set back;
	char err[256] = "";

	assert_non_null(json);
	assert_int_equal(disk_set_from_json(json, &back, err, sizeof(err)), -1);
	if (strcmp(err, message))
		fail_msg("error \"%s\", expected \"%s\"", err, message);
	assert_int_equal(back.count, 0);
	json_object_put(json);
}

static void bad_json_is_refused(void **state)
{
	(void)state;
	from_json_fails("{}", "disks: not an array");
	from_json_fails("[1]", "disks[0]: not an object");
	from_json_fails("[{\"role\":\"rootfs\",\"source\":\"files\",\"read_only\":true,\"extents\":[]}]",
			"disks[0]: missing \"serial\"");
	from_json_fails("[{\"serial\":\"rootfs-1\",\"role\":\"rootfs\",\"source\":\"files\","
			"\"read_only\":true,\"extents\":[]}]",
			"disks[0]: serial \"rootfs-1\" out of order (expected \"rootfs-0\")");
	from_json_fails("[{\"serial\":\"rootfs-0\",\"role\":\"root\",\"source\":\"files\","
			"\"read_only\":true,\"extents\":[]}]",
			"disks[0]: unknown role \"root\"");
	from_json_fails("[{\"serial\":\"rootfs-0\",\"role\":\"rootfs\",\"source\":\"files\","
			"\"read_only\":1,\"extents\":[]}]",
			"disks[0]: \"read_only\" is missing or not a boolean");
	from_json_fails("[{\"serial\":\"rootfs-0\",\"role\":\"rootfs\",\"source\":\"new-ext4\","
			"\"size\":-5,\"read_only\":false,\"extents\":[]}]",
			"disks[0]: \"size\" is negative");
	from_json_fails("[{\"serial\":\"rootfs-0\",\"role\":\"rootfs\",\"source\":\"files\","
			"\"read_only\":true,\"extents\":[{\"path\":\"x\"}]}]",
			"disks[0]: disk rootfs-0: file \"x\" is not absolute");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(serials_count_per_role, setup, teardown),
		cmocka_unit_test_setup_teardown(rootfs_disks_come_first, setup, teardown),
		cmocka_unit_test_setup_teardown(at_most_64_disks, setup, teardown),
		cmocka_unit_test_setup_teardown(specs_must_fit_their_source, setup, teardown),
		cmocka_unit_test_setup_teardown(extent_paths_are_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(formats_vmm_run_disk_values, setup, teardown),
		cmocka_unit_test_setup_teardown(json_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_json_is_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
