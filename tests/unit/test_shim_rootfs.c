/*
 * Unit tests for shim/rootfs.c: every rootfs layout containerd hands a
 * shim becomes the expected disks and a mount plan that guest-init's
 * parser accepts and resolves to the expected overlay; malformed and
 * unsupported mount lists are refused with the mount named, leaving the
 * disk set as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "shim/rootfs.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MOUNT(type_, source_, ...) { .type = (type_), .source = (source_), .target = "", \
	.option_count = ARRAY_LEN(((const char *const[]){ __VA_ARGS__ })), \
	.options = (const char *const[]){ __VA_ARGS__ } }

static const struct rootfs_options options = { .bundle = "/run/c/ns/c1" };
static struct disk_set disks;
static struct rootfs_layout layout;
static struct mount_plan plan;

static int setup(void **state)
{
	(void)state;
	disk_set_init(&disks);
	memset(&plan, 0, sizeof(plan));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	mount_plan_free(&plan);
	rootfs_layout_free(&layout);
	disk_set_free(&disks);
	return 0;
}

/* Classifies @mounts, which must succeed, and parses the plan into `plan`. */
static void classify(const struct rootfs_mount *mounts, size_t count)
{
	char err[2048] = "";

	if (rootfs_classify(mounts, count, &options, &disks, &layout, err, sizeof(err)) < 0)
		fail_msg("rootfs_classify: %s", err);
	if (mount_plan_parse(layout.plan, strlen(layout.plan), &plan, err, sizeof(err)) < 0)
		fail_msg("plan refused: %s\n%s", err, layout.plan);
	assert_int_equal(plan.root_index, (int)plan.mount_count - 1);
	assert_string_equal(plan.mounts[plan.root_index].target, ROOTFS_ROOT);
}

static void classify_fails(const struct rootfs_mount *mounts, size_t count, const char *message)
{
	char err[2048] = "";
	size_t before = disks.count;

	assert_int_equal(rootfs_classify(mounts, count, &options, &disks, &layout, err,
					 sizeof(err)), -1);
	if (!strstr(err, message))
		fail_msg("error \"%s\", expected \"%s\"", err, message);
	assert_int_equal(disks.count, before);
	assert_null(layout.plan);
}

/* The resolved option of plan mount @index that starts with @prefix. */
static void assert_resolved_option(size_t index, const char *expected)
{
	struct mount_plan_resolved resolved;
	size_t prefix = strcspn(expected, "=") + 1;
	char err[512];
	bool found = false;

	if (mount_plan_resolve(&plan, index, &resolved, err, sizeof(err)) < 0)
		fail_msg("resolve %zu: %s", index, err);
	for (size_t i = 0; i < resolved.option_count; i++) {
		if (strncmp(resolved.options[i], expected, prefix))
			continue;
		found = true;
		if (strcmp(resolved.options[i], expected))
			fail_msg("mount %zu: \"%s\", expected \"%s\"", index, resolved.options[i],
				 expected);
	}
	mount_plan_resolved_free(&resolved);
	if (!found)
		fail_msg("mount %zu has no option %s", index, expected);
}

static void overlay_snapshotter(void **state)
{
	const struct rootfs_mount mounts[] = {
		MOUNT("overlay", "overlay", "index=off", "workdir=/s/9/work", "upperdir=/s/9/fs",
		      "lowerdir=/s/3/fs:/s/2/fs:/s/1/fs"),
	};

	(void)state;
	classify(mounts, 1);
	assert_int_equal(layout.kind, ROOTFS_OVERLAY);
	assert_false(layout.read_only);
	assert_string_equal(layout.plan,
		"# erovm rootfs: overlay\n"
		"mount type=erofs source=serial:rootfs-0 name=rootfs.0 options=ro\n"
		"mount type=erofs source=serial:rootfs-1 name=rootfs.1 options=ro\n"
		"mount type=erofs source=serial:rootfs-2 name=rootfs.2 options=ro\n"
		"mount type=ext4 source=serial:rootfs-3 name=rootfs.3 options=rw\n"
		"mount type=format/mkdir/overlay source=overlay name=rootfs "
		"options=X-containerd.mkdir.path={{ mount 3 }}/upper:0755,"
		"X-containerd.mkdir.path={{ mount 3 }}/work:0700,upperdir={{ mount 3 }}/upper,"
		"workdir={{ mount 3 }}/work,lowerdir={{ overlay 0 2 }},index=off\n"
		"root /run/mnt/rootfs\n");
	assert_int_equal(layout.first_disk, 0);
	assert_int_equal(layout.disk_count, 4);
	/* The top layer is the first disk and the first lowerdir. */
	assert_int_equal(disks.disks[0].source, DISK_LAYER);
	assert_string_equal(disks.disks[0].directory, "/s/3/fs");
	assert_int_equal(disks.disks[0].extent_count, 0);
	assert_string_equal(disks.disks[2].directory, "/s/1/fs");
	assert_true(disks.disks[2].read_only);
	assert_int_equal(disks.disks[3].source, DISK_NEW_EXT4);
	assert_false(disks.disks[3].read_only);
	assert_int_equal(disks.disks[3].size, ROOTFS_DEFAULT_WRITABLE_SIZE);
	assert_string_equal(disks.disks[3].require_empty, "/s/9/fs");
	assert_string_equal(disks.disks[3].extents[0].path, "/run/c/ns/c1/rootfs-upper.ext4");
	assert_resolved_option(4, "lowerdir=/run/mnt/rootfs.0:/run/mnt/rootfs.1:/run/mnt/rootfs.2");
	assert_resolved_option(4, "upperdir=/run/mnt/rootfs.3/upper");
	assert_resolved_option(4, "index=off");
}

static void overlay_one_layer_and_size(void **state)
{
	const struct rootfs_mount mounts[] = {
		MOUNT("overlay", "overlay", "workdir=/s/2/work", "upperdir=/s/2/fs",
		      "lowerdir=/s/1/fs"),
	};
	const struct rootfs_options small = { .bundle = "/b", .writable_size = 1 << 30 };
	char err[512];

	(void)state;
	assert_int_equal(rootfs_classify(mounts, 1, &small, &disks, &layout, err, sizeof(err)), 0);
	assert_int_equal(disks.disks[1].size, 1 << 30);
	assert_non_null(strstr(layout.plan, "lowerdir={{ mount 0 }}\n"));
	assert_int_equal(mount_plan_parse(layout.plan, strlen(layout.plan), &plan, err,
					  sizeof(err)), 0);
	assert_resolved_option(2, "lowerdir=/run/mnt/rootfs.0");
}

/* A view (no upperdir, no workdir): read-only, the layers alone. */
static void overlay_read_only_views(void **state)
{
	const struct rootfs_mount two[] = { MOUNT("overlay", "overlay", "lowerdir=/s/2/fs:/s/1/fs") };
	const struct rootfs_mount one[] = { MOUNT("overlay", "overlay", "lowerdir=/s/1/fs") };

	(void)state;
	classify(two, 1);
	assert_true(layout.read_only);
	assert_int_equal(layout.disk_count, 2);
	assert_int_equal(plan.mount_count, 3);
	assert_string_equal(plan.mounts[2].type, "format/overlay");
	assert_resolved_option(2, "lowerdir=/run/mnt/rootfs.0:/run/mnt/rootfs.1");
	teardown(state);
	setup(state);
	classify(one, 1);
	assert_true(layout.read_only);
	assert_string_equal(layout.plan, "# erovm rootfs: overlay\n"
			    "mount type=erofs source=serial:rootfs-0 name=rootfs options=ro\n"
			    "root /run/mnt/rootfs\n");
}

static void native_snapshotter(void **state)
{
	const struct rootfs_mount rw[] = { MOUNT("bind", "/native/snapshots/4", "rbind", "rw") };
	const struct rootfs_mount ro[] = { MOUNT("bind", "/native/snapshots/4", "rbind", "ro") };

	(void)state;
	classify(rw, 1);
	assert_int_equal(layout.kind, ROOTFS_NATIVE);
	assert_false(layout.read_only);
	assert_int_equal(disks.disks[0].source, DISK_DIRECTORY);
	assert_string_equal(disks.disks[0].directory, "/native/snapshots/4");
	assert_string_equal(disks.disks[0].extents[0].path, "/run/c/ns/c1/rootfs-directory.erofs");
	assert_int_equal(disks.disks[1].source, DISK_NEW_EXT4);
	assert_null(disks.disks[1].require_empty);
	assert_int_equal(plan.mount_count, 3);
	assert_resolved_option(2, "lowerdir=/run/mnt/rootfs.0");
	teardown(state);
	setup(state);
	classify(ro, 1);
	assert_true(layout.read_only);
	assert_int_equal(layout.disk_count, 1);
	assert_int_equal(plan.mount_count, 1);
}

/* containerd's EROFS snapshotter, block mode, with a merged fsmeta. */
static void erofs_snapshotter_overlay(void **state)
{
	const struct rootfs_mount mounts[] = {
		MOUNT("mkfs/ext4", "/e/snapshots/9/rwlayer.img", "X-containerd.mkfs.fs=ext4",
		      "X-containerd.mkfs.size=67108864", "rw", "loop"),
		MOUNT("erofs", "/e/snapshots/3/fsmeta.erofs", "ro", "loop",
		      "device=/e/snapshots/1/layer.erofs", "device=/e/snapshots/2/layer.erofs"),
		MOUNT("erofs", "/e/snapshots/4/layer.erofs", "ro", "loop"),
		MOUNT("format/mkdir/overlay", "overlay",
		      "X-containerd.mkdir.path={{ mount 0 }}/upper:0755",
		      "X-containerd.mkdir.path={{ mount 0 }}/work:0755",
		      "workdir={{ mount 0 }}/work", "upperdir={{ mount 0 }}/upper",
		      "lowerdir={{ overlay 2 1 }}"),
	};

	(void)state;
	classify(mounts, ARRAY_LEN(mounts));
	assert_int_equal(layout.kind, ROOTFS_EROFS);
	assert_false(layout.read_only);
	assert_string_equal(layout.plan,
		"# erovm rootfs: erofs\n"
		"mount type=ext4 source=serial:rootfs-0 name=rootfs.0 options=rw\n"
		"mount type=erofs source=serial:rootfs-1 name=rootfs.1 options=ro\n"
		"mount type=erofs source=serial:rootfs-2 name=rootfs.2 options=ro\n"
		"mount type=format/mkdir/overlay source=overlay name=rootfs "
		"options=X-containerd.mkdir.path={{ mount 0 }}/upper:0755,"
		"X-containerd.mkdir.path={{ mount 0 }}/work:0755,workdir={{ mount 0 }}/work,"
		"upperdir={{ mount 0 }}/upper,lowerdir={{ overlay 2 1 }}\n"
		"root /run/mnt/rootfs\n");
	assert_int_equal(disks.disks[0].source, DISK_NEW_EXT4);
	assert_int_equal(disks.disks[0].size, 67108864);
	assert_string_equal(disks.disks[0].extents[0].path, "/e/snapshots/9/rwlayer.img");
	/* The fsmeta and its blobs, in the given order, are one flat disk. */
	assert_int_equal(disks.disks[1].source, DISK_FILES);
	assert_true(disks.disks[1].read_only);
	assert_int_equal(disks.disks[1].extent_count, 3);
	assert_string_equal(disks.disks[1].extents[0].path, "/e/snapshots/3/fsmeta.erofs");
	assert_string_equal(disks.disks[1].extents[1].path, "/e/snapshots/1/layer.erofs");
	assert_string_equal(disks.disks[1].extents[2].path, "/e/snapshots/2/layer.erofs");
	assert_int_equal(disks.disks[2].extent_count, 1);
	assert_resolved_option(3, "lowerdir=/run/mnt/rootfs.2:/run/mnt/rootfs.1");
	assert_resolved_option(3, "upperdir=/run/mnt/rootfs.0/upper");
}

/* No parent in block mode: the writable layer's upper/ bound as the root. */
static void erofs_snapshotter_bind(void **state)
{
	const struct rootfs_mount mounts[] = {
		MOUNT("mkfs/ext4", "/e/snapshots/9/rwlayer.img", "X-containerd.mkfs.fs=ext4",
		      "X-containerd.mkfs.size=1048576", "rw", "loop"),
		MOUNT("format/mkdir/bind", "{{ mount 0 }}/upper",
		      "X-containerd.mkdir.path={{ mount 0 }}/upper:0755", "rw", "rbind"),
	};
	struct mount_plan_resolved resolved;
	char err[512];

	(void)state;
	classify(mounts, ARRAY_LEN(mounts));
	assert_false(layout.read_only);
	assert_string_equal(plan.mounts[1].source, "/run/mnt/rootfs.0/upper");
	assert_int_equal(mount_plan_resolve(&plan, 1, &resolved, err, sizeof(err)), 0);
	assert_int_equal(resolved.mkdir_count, 1);
	assert_string_equal(resolved.mkdirs[0].path, "/run/mnt/rootfs.0/upper");
	mount_plan_resolved_free(&resolved);
}

/* A committed layer's view: one erofs mount, the root itself. */
static void erofs_single_layer_view(void **state)
{
	const struct rootfs_mount mounts[] = { MOUNT("erofs", "/e/snapshots/4/layer.erofs", "ro", "loop") };

	(void)state;
	classify(mounts, 1);
	assert_int_equal(layout.kind, ROOTFS_EROFS);
	assert_true(layout.read_only);
	assert_string_equal(layout.plan, "# erovm rootfs: erofs\n"
			    "mount type=erofs source=serial:rootfs-0 name=rootfs options=ro\n"
			    "root /run/mnt/rootfs\n");
}

static void block_device(void **state)
{
	const struct rootfs_mount mounts[] = { MOUNT("ext4", "/dev/mapper/containerd-pool-snap-7") };

	(void)state;
	classify(mounts, 1);
	assert_int_equal(layout.kind, ROOTFS_BLOCK_DEVICE);
	assert_false(layout.read_only);
	assert_int_equal(disks.disks[0].source, DISK_FILES);
	assert_string_equal(disks.disks[0].extents[0].path, "/dev/mapper/containerd-pool-snap-7");
	assert_string_equal(layout.plan, "# erovm rootfs: block-device\n"
			    "mount type=ext4 source=serial:rootfs-0 name=rootfs\n"
			    "root /run/mnt/rootfs\n");
}

/* Disks already in the set (none should be, but the order rule holds). */
static void layouts_append_to_the_disk_set(void **state)
{
	const struct rootfs_mount mounts[] = { MOUNT("bind", "/n/1", "rbind", "ro") };
	struct disk_spec spec = { .role = DISK_ROLE_ROOTFS, .source = DISK_FILES };
	char err[256];

	(void)state;
	assert_non_null(disk_set_add(&disks, &spec, err, sizeof(err)));
	classify(mounts, 1);
	assert_int_equal(layout.first_disk, 1);
	assert_int_equal(layout.disk_count, 1);
	assert_string_equal(plan.mounts[0].source, "serial:rootfs-1");
}

static void malformed_overlays(void **state)
{
	(void)state;
	classify_fails((const struct rootfs_mount[]){ MOUNT("overlay", "overlay", "workdir=/w",
							    "lowerdir=/l") }, 1,
		       "rootfs mount 0 (overlay overlay): workdir without upperdir");
	classify_fails((const struct rootfs_mount[]){ MOUNT("overlay", "overlay", "upperdir=/u",
							    "lowerdir=/l") }, 1,
		       "rootfs mount 0 (overlay overlay): upperdir without workdir");
	classify_fails((const struct rootfs_mount[]){ MOUNT("overlay", "overlay", "upperdir=/u",
							    "workdir=/w") }, 1,
		       "rootfs mount 0 (overlay overlay): no lowerdir option");
	classify_fails((const struct rootfs_mount[]){ MOUNT("overlay", "overlay", "lowerdir=") }, 1,
		       "rootfs mount 0 (overlay overlay): empty lowerdir");
	classify_fails((const struct rootfs_mount[]){ MOUNT("overlay", "overlay",
							    "lowerdir=/a::/b") }, 1,
		       "lowerdir element 1 is empty");
	classify_fails((const struct rootfs_mount[]){ MOUNT("overlay", "overlay",
							    "lowerdir=/a:") }, 1,
		       "lowerdir element 1 is empty");
	classify_fails((const struct rootfs_mount[]){ MOUNT("overlay", "overlay",
							    "lowerdir=/a:rel") }, 1,
		       "lowerdir element \"rel\" is not an absolute path");
	classify_fails((const struct rootfs_mount[]){ MOUNT("overlay", "overlay", "lowerdir=/a",
							    "lowerdir=/b") }, 1,
		       "option lowerdir given twice");
	classify_fails((const struct rootfs_mount[]){ MOUNT("overlay", "overlay", "lowerdir=/a",
							    "workdir=w", "upperdir=u") }, 1,
		       "upperdir \"u\" is not an absolute path");
	classify_fails((const struct rootfs_mount[]){ MOUNT("bind", "/n/1", "ro") }, 1,
		       "rootfs mount 0 (bind /n/1): a bind mount without a bind or rbind option");
	classify_fails((const struct rootfs_mount[]){ MOUNT("bind", "/n/1", "rbind", "nosuid") }, 1,
		       "option \"nosuid\": a directory root takes only bind, rbind, ro and rw");
}

/* A bundle path vmm-run's --disk could not carry. */
static void bundle_path_must_fit_a_disk_argument(void **state)
{
	const struct rootfs_mount mounts[] = { MOUNT("bind", "/n/1", "rbind", "ro") };
	const struct rootfs_options odd = { .bundle = "/run/a,b" };
	char err[512];

	(void)state;
	assert_int_equal(rootfs_classify(mounts, 1, &odd, &disks, &layout, err, sizeof(err)), -1);
	assert_string_equal(err, "rootfs mount 0 (bind /n/1): disk rootfs-0: file "
			    "\"/run/a,b/rootfs-directory.erofs\" holds ':', ',' or '@', which "
			    "vmm-run's --disk syntax cannot carry");
	assert_int_equal(disks.count, 0);
}

static void too_many_layers(void **state)
{
	char lowerdir[8192] = "lowerdir=";
	const char *opts[] = { lowerdir, "workdir=/w", "upperdir=/u" };
	const struct rootfs_mount mounts[] = {
		{ .type = "overlay", .source = "overlay", .target = "", .option_count = 3,
		  .options = opts },
	};
	size_t len = strlen(lowerdir);

	(void)state;
	for (int i = 0; i < ROOTFS_MAX_LAYERS; i++)
		len += (size_t)snprintf(lowerdir + len, sizeof(lowerdir) - len, "%s/l/%d",
					i ? ":" : "", i);
	classify(mounts, 1);
	assert_int_equal(disks.count, ROOTFS_MAX_LAYERS + 1);
	assert_int_equal(plan.mount_count, MOUNT_PLAN_MAX_MOUNTS);
	teardown(state);
	setup(state);
	snprintf(lowerdir + len, sizeof(lowerdir) - len, ":/l/last");
	classify_fails(mounts, 1, "rootfs mount 0 (overlay overlay): 63 lower layers, more "
		       "than the 62 a VM root takes");
}

/* With volumes or other disks in the way, the 64-disk limit names the mount. */
static void disk_limit_leaves_the_set_alone(void **state)
{
	const struct rootfs_mount mounts[] = {
		MOUNT("overlay", "overlay", "workdir=/w", "upperdir=/u", "lowerdir=/a:/b:/c"),
	};
	struct disk_spec spec = { .role = DISK_ROLE_ROOTFS, .source = DISK_FILES };
	char err[256];

	(void)state;
	for (int i = 0; i < 61; i++)
		assert_non_null(disk_set_add(&disks, &spec, err, sizeof(err)));
	classify_fails(mounts, 1, "rootfs mount 0 (overlay overlay): a VM takes at most 64 "
		       "disks; rootfs disk 64 would be one more");
	assert_int_equal(disks.next_index[DISK_ROLE_ROOTFS], 61);
}

static void bad_mount_lists(void **state)
{
	(void)state;
	classify_fails(NULL, 0, "no rootfs mounts");
	classify_fails((const struct rootfs_mount[]){ MOUNT("nfs", "server:/export") }, 1,
		       "rootfs mount 0 (nfs server:/export): unsupported mount type");
	classify_fails((const struct rootfs_mount[]){ MOUNT("xfs", "/dev/mapper/x") }, 1,
		       "rootfs mount 0 (xfs /dev/mapper/x): unsupported mount type");
	classify_fails((const struct rootfs_mount[]){ MOUNT("mkfs/xfs", "/r.img") }, 1,
		       "rootfs mount 0 (mkfs/xfs /r.img): only ext4 is made");
	classify_fails((const struct rootfs_mount[]){
			       MOUNT("mkfs/ext4", "/r.img", "X-containerd.mkfs.fs=xfs") }, 1,
		       "X-containerd.mkfs.fs=xfs: only ext4 is made");
	classify_fails((const struct rootfs_mount[]){
			       MOUNT("mkfs/ext4", "/r.img", "X-containerd.mkfs.size=10G") }, 1,
		       "X-containerd.mkfs.size=10G is not a size in bytes");
	classify_fails((const struct rootfs_mount[]){ MOUNT("erofs", "layer.erofs", "ro") }, 1,
		       "rootfs mount 0 (erofs layer.erofs): the source is not an absolute path");
	classify_fails((const struct rootfs_mount[]){ MOUNT("ext4", "/r.img", "device=/x") }, 1,
		       "device= options belong to erofs mounts");
	classify_fails((const struct rootfs_mount[]){
			       MOUNT("ext4", "/r.img", "X-containerd.mkdir.path=/x") }, 1,
		       "mkdir directives need a mkdir/ type");
	classify_fails((const struct rootfs_mount[]){
			       MOUNT("erofs", "/l.erofs", "ro"),
			       MOUNT("overlay", "overlay", "lowerdir=/host/dir") }, 2,
		       "rootfs mount 1 (overlay overlay): in a list of mounts, overlay needs a "
		       "format/ type");
	classify_fails((const struct rootfs_mount[]){
			       MOUNT("erofs", "/l.erofs", "ro"),
			       MOUNT("format/overlay", "overlay", "lowerdir=/host/dir") }, 2,
		       "option \"lowerdir=/host/dir\" names a host path");
	classify_fails((const struct rootfs_mount[]){
			       MOUNT("erofs", "/l.erofs", "ro"),
			       MOUNT("format/bind", "/host/dir", "rbind") }, 2,
		       "the bind source is a host path");
	classify_fails((const struct rootfs_mount[]){
			       MOUNT("erofs", "/l.erofs", "ro"),
			       MOUNT("format/tmpfs", "tmpfs") }, 2,
		       "a format/ mount of tmpfs: only overlay and bind");
	classify_fails((const struct rootfs_mount[]){
			       MOUNT("format/overlay", "overlay", "lowerdir={{ mount 0 }}"),
			       MOUNT("erofs", "/l.erofs", "ro") }, 2,
		       "rootfs mount 0 (format/overlay overlay): only the last mount");
}

static void bad_templates(void **state)
{
	static const struct {
		const char *option, *message;
	} cases[] = {
		{ "lowerdir={{ source 0 }}", "{{ source N }} is a host path" },
		{ "lowerdir={{ mount 1 }}", "refers to mount 1, not an earlier mount" },
		{ "lowerdir={{ overlay 0 1 }}", "refers to mount 1, not an earlier mount" },
		{ "lowerdir={{ frob 0 }}", "unknown template function \"frob\"" },
		{ "lowerdir={{ mount 0", "\"{{\" without \"}}\"" },
		{ "lowerdir={{ mount }}", "malformed template" },
		{ "lowerdir={{ mount 0 0 }}", "malformed template" },
		{ "lowerdir={{ overlay 0 }}", "malformed template" },
		{ "lowerdir={{ mount 0000 }}", "malformed template" },
		{ "lowerdir=}}", "\"lowerdir=}}\": \"}}\" without \"{{\"" },
		{ "upperdir={{ mount 0 }}/u }}", "\"}}\" without \"{{\"" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct rootfs_mount mounts[] = {
			MOUNT("erofs", "/l.erofs", "ro"),
			MOUNT("format/overlay", "overlay", cases[i].option),
		};

		classify_fails(mounts, 2, cases[i].message);
	}
}

static void json_record_round_trip(void **state)
{
	const struct rootfs_mount mounts[] = {
		MOUNT("overlay", "overlay", "workdir=/s/2/work", "upperdir=/s/2/fs",
		      "lowerdir=/s/1/fs:/s/0/fs"),
	};
	struct rootfs_layout back;
	struct disk_set back_disks;
	json_object *json, *plan_field;
	char err[512];

	(void)state;
	classify(mounts, 1);
	json = rootfs_layout_to_json(&layout, &disks);
	assert_non_null(json);
	if (rootfs_layout_from_json(json, &back, &back_disks, err, sizeof(err)) < 0)
		fail_msg("rootfs_layout_from_json: %s", err);
	assert_int_equal(back.kind, ROOTFS_OVERLAY);
	assert_false(back.read_only);
	assert_string_equal(back.plan, layout.plan);
	assert_int_equal(back.disk_count, 3);
	assert_int_equal(back_disks.count, 3);
	assert_string_equal(back_disks.disks[1].directory, "/s/0/fs");
	rootfs_layout_free(&back);
	disk_set_free(&back_disks);

	/* A record whose plan guest-init would refuse is refused. */
	json_object_object_get_ex(json, "plan", &plan_field);
	json_object_set_string(plan_field, "mount type=nfs source=x\n");
	assert_int_equal(rootfs_layout_from_json(json, &back, &back_disks, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "rootfs record: plan: line 1: unknown type \"nfs\""));
	assert_int_equal(back_disks.count, 0);
	json_object_object_add(json, "disk_count", json_object_new_int(4));
	json_object_set_string(plan_field, layout.plan);
	assert_int_equal(rootfs_layout_from_json(json, &back, &back_disks, err, sizeof(err)), -1);
	assert_string_equal(err, "rootfs record: disks 0+4 are not in its 3 disks");
	json_object_put(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(overlay_snapshotter, setup, teardown),
		cmocka_unit_test_setup_teardown(overlay_one_layer_and_size, setup, teardown),
		cmocka_unit_test_setup_teardown(overlay_read_only_views, setup, teardown),
		cmocka_unit_test_setup_teardown(native_snapshotter, setup, teardown),
		cmocka_unit_test_setup_teardown(erofs_snapshotter_overlay, setup, teardown),
		cmocka_unit_test_setup_teardown(erofs_snapshotter_bind, setup, teardown),
		cmocka_unit_test_setup_teardown(erofs_single_layer_view, setup, teardown),
		cmocka_unit_test_setup_teardown(block_device, setup, teardown),
		cmocka_unit_test_setup_teardown(layouts_append_to_the_disk_set, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed_overlays, setup, teardown),
		cmocka_unit_test_setup_teardown(bundle_path_must_fit_a_disk_argument, setup, teardown),
		cmocka_unit_test_setup_teardown(too_many_layers, setup, teardown),
		cmocka_unit_test_setup_teardown(disk_limit_leaves_the_set_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_mount_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_templates, setup, teardown),
		cmocka_unit_test_setup_teardown(json_record_round_trip, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
