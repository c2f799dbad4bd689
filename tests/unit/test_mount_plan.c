/*
 * Unit tests for vmm/mount_plan.c: the plan guest-init executes to build
 * a container root from containerd's mount lists. The executor runs on
 * recorders instead of the real system calls: nothing is mounted here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/mount_plan.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* The EROFS snapshotter's shape: one layer, the ext4 upper disk, the overlay. */
#define ONE_LOWER_PLAN \
	"# comment\n" \
	"mount type=erofs source=serial:layer1 target=/run/mnt/l1 options=ro\n" \
	"mount type=ext4 source=serial:upper target=/run/mnt/upper options=rw\n" \
	"mount type=format/mkdir/overlay source=overlay target=/run/mnt/root " \
	"options=X-containerd.mkdir.path={{ mount 1 }}/upper:0755," \
	"X-containerd.mkdir.path={{ mount 1 }}/work:0755,upperdir={{ mount 1 }}/upper," \
	"workdir={{ mount 1 }}/work,lowerdir={{ overlay 0 0 }}\n" \
	"root /run/mnt/root\n"

/* containerd's own order: the writable disk first, then two layers. */
#define TWO_LOWER_PLAN \
	"mount type=ext4 source=serial:rw name=rw " \
	"options=X-containerd.mkfs.fs=ext4,X-containerd.mkfs.size=1048576,rw,loop\n" \
	"  mount\ttype=erofs source=serial:sha-1 options=ro,loop\n" \
	"\n" \
	"mount type=erofs source=serial:sha-2 options=ro,loop\n" \
	"mount type=format/mkdir/overlay " \
	"options=X-containerd.mkdir.path={{ mount 0 }}/upper:0755:1000:1001," \
	"X-containerd.mkdir.path={{ mount 0 }}/work," \
	"upperdir={{ mount 0 }}/upper,workdir={{ mount 0 }}/work,lowerdir={{ overlay 2 1 }}\n"

static struct mount_plan plan;

static int teardown(void **state)
{
	(void)state;
	mount_plan_free(&plan);
	return 0;
}

static void parse_ok(const char *text)
{
	char err[512] = "";

	if (mount_plan_parse(text, strlen(text), &plan, err, sizeof(err)) < 0)
		fail_msg("rejected: %s", err);
}

/* Parses @text, which must fail with @message. */
static void parse_fails(const char *text, const char *message)
{
	char err[512] = "";

	if (mount_plan_parse(text, strlen(text), &plan, err, sizeof(err)) == 0)
		fail_msg("accepted \"%s\"", text);
	if (strcmp(err, message))
		fail_msg("\"%s\": error \"%s\", expected \"%s\"", text, err, message);
	assert_int_equal(plan.mount_count, 0);
	assert_int_equal(plan.root_index, -1);
}

static int fake_serial(void *ctx, const char *serial, char *path, size_t size)
{
	(void)ctx;
	if (!strcmp(serial, "missing"))
		return -ENODEV;
	snprintf(path, size, "/dev/disk-%s", serial);
	return 0;
}

/* Resolves mount @index of the plan and turns it into mount(2) arguments. */
static void syscall_args(size_t index, struct mount_plan_resolved *resolved,
			 struct mount_plan_syscall *args)
{
	char err[512];

	if (mount_plan_resolve(&plan, index, resolved, err, sizeof(err)) < 0)
		fail_msg("resolve %zu: %s", index, err);
	if (mount_plan_syscall_args(resolved, fake_serial, NULL, args, err, sizeof(err)) < 0)
		fail_msg("syscall args %zu: %s", index, err);
}

static void test_parses_one_lower_snapshotter_plan(void **state)
{
	struct mount_plan_resolved resolved;
	struct mount_plan_syscall args;

	(void)state;
	parse_ok(ONE_LOWER_PLAN);
	assert_int_equal(plan.mount_count, 3);
	assert_int_equal(plan.root_index, 2);
	assert_int_equal(plan.mounts[0].fs, MOUNT_PLAN_EROFS);
	assert_int_equal(plan.mounts[0].line, 2);
	assert_string_equal(plan.mounts[0].source, "serial:layer1");
	assert_int_equal(plan.mounts[2].fs, MOUNT_PLAN_OVERLAY);
	assert_true(plan.mounts[2].format && plan.mounts[2].mkdir);
	assert_string_equal(plan.mounts[2].type, "format/mkdir/overlay");

	syscall_args(0, &resolved, &args);
	assert_string_equal(args.fstype, "erofs");
	assert_string_equal(args.source, "/dev/disk-layer1");
	assert_string_equal(args.target, "/run/mnt/l1");
	assert_int_equal(args.flags, MS_RDONLY);
	assert_string_equal(args.data, "");
	mount_plan_resolved_free(&resolved);

	syscall_args(2, &resolved, &args);
	assert_int_equal(resolved.mkdir_count, 2);
	assert_string_equal(resolved.mkdirs[0].path, "/run/mnt/upper/upper");
	assert_int_equal(resolved.mkdirs[0].mode, 0755);
	assert_false(resolved.mkdirs[0].set_owner);
	assert_string_equal(resolved.mkdirs[1].path, "/run/mnt/upper/work");
	assert_int_equal(resolved.option_count, 3);
	assert_string_equal(args.fstype, "overlay");
	assert_string_equal(args.source, "overlay");
	assert_int_equal(args.flags, 0);
	assert_int_equal(args.remount_flags, 0);
	assert_string_equal(args.data, "upperdir=/run/mnt/upper/upper,"
			    "workdir=/run/mnt/upper/work,lowerdir=/run/mnt/l1");
	mount_plan_resolved_free(&resolved);
}

static void test_parses_two_lower_snapshotter_plan(void **state)
{
	struct mount_plan_resolved resolved;
	struct mount_plan_syscall args;

	(void)state;
	parse_ok(TWO_LOWER_PLAN);
	assert_int_equal(plan.mount_count, 4);
	assert_int_equal(plan.root_index, -1);
	assert_string_equal(plan.mounts[0].target, "/run/mnt/rw");
	assert_string_equal(plan.mounts[1].target, "/run/mnt/1");
	assert_int_equal(plan.mounts[1].line, 2);
	assert_string_equal(plan.mounts[2].target, "/run/mnt/2");
	assert_int_equal(plan.mounts[2].line, 4);
	assert_string_equal(plan.mounts[3].target, "/run/mnt/3");
	assert_string_equal(plan.mounts[3].source, "none");

	/* loop and X-containerd.mkfs.* mean nothing inside the VM. */
	syscall_args(0, &resolved, &args);
	assert_int_equal(resolved.option_count, 1);
	assert_int_equal(args.flags, 0);
	assert_string_equal(args.data, "");
	mount_plan_resolved_free(&resolved);

	syscall_args(3, &resolved, &args);
	assert_int_equal(resolved.mkdir_count, 2);
	assert_string_equal(resolved.mkdirs[0].path, "/run/mnt/rw/upper");
	assert_true(resolved.mkdirs[0].set_owner);
	assert_int_equal(resolved.mkdirs[0].uid, 1000);
	assert_int_equal(resolved.mkdirs[0].gid, 1001);
	assert_int_equal(resolved.mkdirs[1].mode, 0700);
	/* {{ overlay 2 1 }} counts down: mount 2 is the top layer. */
	assert_string_equal(args.data, "upperdir=/run/mnt/rw/upper,workdir=/run/mnt/rw/work,"
			    "lowerdir=/run/mnt/2:/run/mnt/1");
	mount_plan_resolved_free(&resolved);
}

static void test_expands_templates(void **state)
{
	struct mount_plan_resolved resolved;
	struct mount_plan_syscall args;

	(void)state;
	parse_ok("mount type=tmpfs name=a\n"
		 "mount type=bind source=/srv/data target=/run/mnt/b\n"
		 "mount type=format/bind source={{ source 1 }}/x target={{mount 0}}/c\n"
		 "mount type=format/tmpfs target={{ target 2 }}/d\n"
		 "mount type=format/overlay options=lowerdir={{ overlay 0 3 }},"
		 "upperdir={{ mount 0 }}/u{{ mount 1 }},workdir={{ target 3 }}{{ target 3 }}\n");
	assert_string_equal(plan.mounts[2].source, "/srv/data/x");
	assert_string_equal(plan.mounts[2].target, "/run/mnt/a/c");
	/* A target made of templates is expanded once, for every later use. */
	assert_string_equal(plan.mounts[3].target, "/run/mnt/a/c/d");

	syscall_args(4, &resolved, &args);
	assert_string_equal(args.data, "lowerdir=/run/mnt/a:/run/mnt/b:/run/mnt/a/c:/run/mnt/a/c/d,"
			    "upperdir=/run/mnt/a/u/run/mnt/b,"
			    "workdir=/run/mnt/a/c/d/run/mnt/a/c/d");
	mount_plan_resolved_free(&resolved);
}

static void test_rejects_bad_templates(void **state)
{
	static const struct {
		const char *options, *error;
	} cases[] = {
		{ "lowerdir={{ mount 1 }}",
		  "line 2: template refers to mount 1, which is not an earlier mount than 1" },
		{ "lowerdir={{ mount 2 }}",
		  "line 2: template refers to mount 2, which is not an earlier mount than 1" },
		{ "lowerdir={{ overlay 0 1 }}",
		  "line 2: template refers to mount 1, which is not an earlier mount than 1" },
		{ "lowerdir={{ lower 0 }}", "line 2: unknown template function \"lower\"" },
		{ "lowerdir={{ lower }}", "line 2: unknown template function \"lower\"" },
		{ "lowerdir={{ }}", "line 2: unknown template function \"\"" },
		{ "lowerdir={{ mount }}", "line 2: malformed template: expected a mount index" },
		{ "lowerdir={{ mount0 }}", "line 2: malformed template: expected a mount index" },
		{ "lowerdir={{ mount -1 }}", "line 2: malformed template: expected a mount index" },
		{ "lowerdir={{ mount 0 0 }}", "line 2: malformed template: expected \"}}\"" },
		{ "lowerdir={{ overlay 0 }}", "line 2: malformed template: expected a mount index" },
		{ "lowerdir={{ mount 0 }", "line 2: unterminated \"{{\"" },
		{ "lowerdir={{ mount 0 }}}}", "line 2: malformed template: \"}}\" without \"{{\"" },
		{ "lowerdir={{ mount 1000 }}", "line 2: template index 1000 is too large" },
		{ "lowerdir={{ mount 0", "line 2: unterminated \"{{\"" },
		{ "lowerdir=%7B%7B%20mount%200", "line 2: malformed template: expected \"}}\"" },
		{ "lowerdir={{ mount 0 }}/..", "line 2: lowerdir path \"/run/mnt/0/..\" has a \".\" or \"..\" component" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char text[256];

		snprintf(text, sizeof(text), "mount type=erofs source=serial:a\n"
			 "mount type=format/overlay options=%s\n", cases[i].options);
		parse_fails(text, cases[i].error);
	}
	parse_fails("mount type=ext4 source=serial:a\nmount type=format/bind source={{ source 0 }}\n",
		    "line 2: source: {{ source 0 }}: the source of mount 0 is a disk serial, not a path");
	parse_fails("mount type=tmpfs\nmount type=tmpfs target={{ mount 0 }}/x\n",
		    "line 2: target: templates need a format/ type");
	parse_fails("mount type=tmpfs\nmount type=overlay options=lowerdir={{ mount 0 }}\n",
		    "line 2: option \"lowerdir={{ mount 0 }}\": templates need a format/ type");
	parse_fails("mount type=format/tmpfs target={{ mount 0 }}\n",
		    "line 1: target: template refers to mount 0, which is not an earlier mount than 0");
	parse_fails("mount type=tmpfs\nmount type=format/tmpfs target={{ mount 0 }}/..\n",
		    "line 2: target \"/run/mnt/0/..\" has a \".\" or \"..\" component");
}

static void test_rejects_bad_mkdir_directives(void **state)
{
	static const struct {
		const char *directive, *error;
	} cases[] = {
		{ "/run/mnt/0/a:0758", "mkdir \"/run/mnt/0/a\": mode \"0758\" is not octal 0-7777" },
		{ "/run/mnt/0/a:10000", "mkdir \"/run/mnt/0/a\": mode \"10000\" is not octal 0-7777" },
		{ "/run/mnt/0/a:", "mkdir \"/run/mnt/0/a\": mode \"\" is not octal 0-7777" },
		{ "/run/mnt/0/a:0o755", "mkdir \"/run/mnt/0/a\": mode \"0o755\" is not octal 0-7777" },
		{ "/run/mnt/0/a:+755", "mkdir \"/run/mnt/0/a\": mode \"+755\" is not octal 0-7777" },
		{ "/run/mnt/0/a:0755:1000", "mkdir \"/run/mnt/0/a\": a UID needs a GID" },
		{ "/run/mnt/0/a:0755:-1:0", "mkdir \"/run/mnt/0/a\": bad UID:GID \"-1:0\"" },
		{ "/run/mnt/0/a:0755:0:x", "mkdir \"/run/mnt/0/a\": bad UID:GID \"0:x\"" },
		{ "/run/mnt/0/a:0755:4294967295:0",
		  "mkdir \"/run/mnt/0/a\": bad UID:GID \"4294967295:0\"" },
		{ "/run/mnt/0/a:0755:99999999999999999999:0",
		  "mkdir \"/run/mnt/0/a\": bad UID:GID \"99999999999999999999:0\"" },
		{ "/run/mnt/0/a:0755:0:0:0", "mkdir \"/run/mnt/0/a\": more than PATH:MODE:UID:GID" },
		{ "run/mnt/0/a", "mkdir path \"run/mnt/0/a\" is not absolute" },
		{ "/run/mnt/0/../../etc", "mkdir path \"/run/mnt/0/../../etc\" has a \".\" or \"..\" component" },
		{ "/run/mnt/0//a", "mkdir path \"/run/mnt/0//a\" has an empty component" },
		{ "/run/mnt/01/a", "mkdir path \"/run/mnt/01/a\" is not inside the target of an earlier mount" },
		{ "/etc", "mkdir path \"/etc\" is not inside the target of an earlier mount" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char text[256], error[256];

		snprintf(text, sizeof(text), "mount type=tmpfs\n"
			 "mount type=mkdir/overlay options=X-containerd.mkdir.path=%s\n",
			 cases[i].directive);
		snprintf(error, sizeof(error), "line 2: %s", cases[i].error);
		parse_fails(text, error);
	}
	parse_fails("mount type=tmpfs\nmount type=overlay options=X-containerd.mkdir.path=/run/mnt/0/a\n",
		    "line 2: option \"X-containerd.mkdir.path=/run/mnt/0/a\" needs a mkdir/ type");
	parse_fails("mount type=tmpfs\nmount type=mkdir/overlay options=X-containerd.mkdir.mode=1\n",
		    "line 2: unknown mkdir option \"X-containerd.mkdir.mode=1\"");
	/* The largest mode and IDs pass. */
	parse_ok("mount type=tmpfs\nmount type=mkdir/tmpfs options="
		 "X-containerd.mkdir.path=/run/mnt/0/a:07777:4294967294:0\n");
}

static void test_rejects_bad_types_and_fields(void **state)
{
	static const struct {
		const char *text, *error;
	} cases[] = {
		{ "mount type=xfs source=serial:a\n", "line 1: unknown type \"xfs\": expected "
		  "[format/][mkdir/]erofs, ext4, tmpfs, bind or overlay" },
		{ "mount type=mkdir/format/overlay\n", "line 1: unknown type \"mkdir/format/overlay\": "
		  "expected [format/][mkdir/]erofs, ext4, tmpfs, bind or overlay" },
		{ "mount type=format/format/tmpfs\n", "line 1: unknown type \"format/format/tmpfs\": "
		  "expected [format/][mkdir/]erofs, ext4, tmpfs, bind or overlay" },
		{ "mount type=format/\n", "line 1: unknown type \"format/\": "
		  "expected [format/][mkdir/]erofs, ext4, tmpfs, bind or overlay" },
		{ "mount type=Ext4 source=serial:a\n", "line 1: unknown type \"Ext4\": "
		  "expected [format/][mkdir/]erofs, ext4, tmpfs, bind or overlay" },
		{ "mount source=serial:a\n", "line 1: missing field type" },
		{ "mount\n", "line 1: missing field type" },
		{ "mount type=ext4\n", "line 1: missing field source" },
		{ "mount type=bind target=/x\n", "line 1: missing field source" },
		{ "mount type=tmpfs size=1\n", "line 1: unknown field \"size\"" },
		{ "mount type=tmpfs type=tmpfs\n", "line 1: field type given twice" },
		{ "mount type=tmpfs ro\n", "line 1: \"ro\" is not FIELD=VALUE" },
		{ "mount type=tmpfs name=a target=/b\n", "line 1: give name or target, not both" },
		{ "mount type=tmpfs name=..\n", "line 1: name \"..\" is not a plain name of [A-Za-z0-9._-]" },
		{ "mount type=tmpfs name=a/b\n", "line 1: name \"a/b\" is not a plain name of [A-Za-z0-9._-]" },
		{ "mount type=tmpfs target=/\n", "line 1: target is \"/\"" },
		{ "mount type=tmpfs target=run\n", "line 1: target \"run\" is not absolute" },
		{ "mount type=tmpfs target=/run/mnt/../../etc\n",
		  "line 1: target \"/run/mnt/../../etc\" has a \".\" or \"..\" component" },
		{ "mount type=tmpfs target=/run/mnt/./x\n",
		  "line 1: target \"/run/mnt/./x\" has a \".\" or \"..\" component" },
		{ "mount type=tmpfs target=/run/mnt/x/\n", "line 1: target \"/run/mnt/x/\" has an empty component" },
		{ "mount type=tmpfs name=a\nmount type=tmpfs target=/run/mnt/a\n",
		  "line 2: target \"/run/mnt/a\" is also the target of mount 0" },
		{ "mount type=bind source=data\n", "line 1: source \"data\" is not absolute" },
		{ "mount type=bind source=/srv/../etc\n", "line 1: source \"/srv/../etc\" has a \".\" or \"..\" component" },
		{ "mount type=ext4 source=serial:\n", "line 1: disk serial \"\" is not 1-20 bytes of [A-Za-z0-9._-]" },
		{ "mount type=ext4 source=serial:123456789012345678901\n",
		  "line 1: disk serial \"123456789012345678901\" is not 1-20 bytes of [A-Za-z0-9._-]" },
		{ "mount type=ext4 source=serial:a%2Fb\n", "line 1: disk serial \"a/b\" is not 1-20 bytes of [A-Za-z0-9._-]" },
		{ "mount type=ext4 source=vdb\n", "line 1: source \"vdb\" is not absolute" },
		{ "mount type=tmpfs source=/x\n", "line 1: source \"/x\" of a tmpfs mount is not \"none\" or a label of [A-Za-z0-9._-]" },
		{ "mount type=tmpfs options=ro,,nosuid\n", "line 1: empty option" },
		{ "mount type=tmpfs options=\n", "line 1: empty option" },
		{ "mount type=tmpfs options=bind\n", "line 1: option \"bind\" is for bind mounts only" },
		{ "mount type=bind source=/a options=rbind,mode=0755\n", "line 1: bind mounts take no option \"mode=0755\"" },
		{ "mount type=tmpfs options=uid=%2C0\n", "line 1: option \"uid=,0\" holds a ',', which the kernel would split" },
		{ "mount type=overlay options=upperdir=up\n", "line 1: upperdir path \"up\" is not absolute" },
		{ "mount type=overlay options=lowerdir=/a::/b\n", "line 1: lowerdir path \"\" is not absolute" },
		{ "umount /x\n", "line 1: unknown directive \"umount\"" },
		{ "{{ mount\n", "line 1: unterminated \"{{\"" },
		{ "Mount type=tmpfs\n", "line 1: unknown directive \"Mount\"" },
		{ "mount type=tmpfs\nroot\n", "line 2: root needs a PATH" },
		{ "mount type=tmpfs\nroot /run/mnt/0 /x\n", "line 2: root takes one PATH" },
		{ "mount type=tmpfs\nroot /run/mnt/1\n", "line 2: root \"/run/mnt/1\" is not the target of a mount" },
		{ "root /run/mnt/0\nmount type=tmpfs\nroot /run/mnt/0\n", "line 3: a second root line" },
		{ "mount type=tmpfs\nroot run/mnt/0\n", "line 2: root \"run/mnt/0\" is not absolute" },
		{ "mount type=tmpfs\r\n", "line 1: byte 0x0d at column 17 is not printable ASCII (write it as %XX)" },
		{ "# ok\nmount type=tmpfs target=/caf\xc3\xa9\n",
		  "line 2: byte 0xc3 at column 29 is not printable ASCII (write it as %XX)" },
		{ "mount type=tmpfs target=/a%zz\n", "line 1: target: '%' not followed by two hex digits" },
		{ "mount type=tmpfs target=/a%4\n", "line 1: target: '%' not followed by two hex digits" },
		{ "mount type=tmpfs target=/a%00b\n", "line 1: target: %00 (NUL) is not allowed" },
		{ "mount type=tmpfs options=mode=%1\n", "line 1: option \"mode=%1\": '%' not followed by two hex digits" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		parse_fails(cases[i].text, cases[i].error);
}

static void test_rejects_nul_bytes(void **state)
{
	static const char text[] = "# a comment\nmount type=tmpfs\n# \0 here\n";
	char err[128];

	(void)state;
	assert_int_equal(mount_plan_parse(text, sizeof(text) - 1, &plan, err, sizeof(err)), -1);
	assert_string_equal(err, "line 3: NUL byte");
	assert_int_equal(plan.mount_count, 0);
}

static void test_round_trips_special_characters(void **state)
{
	static const char *const paths[] = {
		"/run/mnt/a b", "/run/mnt/a,b=c", "/run/mnt/100%", "/run/mnt/tab\there",
		"/run/mnt/new\nline", "/run/mnt/caf\xc3\xa9", "/run/mnt/#{x}=y;", "/run/mnt/\x01\x7f\xff",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
		char target[128], option[128], text[512];
		struct mount_plan_resolved resolved;

		assert_true(mount_plan_encode(paths[i], false, target, sizeof(target)) > 0);
		assert_true(mount_plan_encode(paths[i], true, option, sizeof(option)) > 0);
		assert_null(strchr(option, ','));
		snprintf(text, sizeof(text), "mount type=tmpfs target=%s\n"
			 "mount type=mkdir/tmpfs options=X-containerd.mkdir.path=%s/sub:0750\n"
			 "root %s\n", target, option, target);
		parse_ok(text);
		assert_string_equal(plan.mounts[0].target, paths[i]);
		assert_int_equal(plan.root_index, 0);
		assert_int_equal(mount_plan_resolve(&plan, 1, &resolved, text, sizeof(text)), 0);
		assert_int_equal(resolved.mkdir_count, 1);
		assert_memory_equal(resolved.mkdirs[0].path, paths[i], strlen(paths[i]));
		assert_string_equal(resolved.mkdirs[0].path + strlen(paths[i]), "/sub");
		mount_plan_resolved_free(&resolved);
		mount_plan_free(&plan);
	}
}

static void test_encodes_known_example(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(mount_plan_encode("/a b,c%=\xff", false, out, sizeof(out)), 15);
	assert_string_equal(out, "/a%20b,c%25=%FF");
	assert_int_equal(mount_plan_encode("/a b,c", true, out, sizeof(out)), 10);
	assert_string_equal(out, "/a%20b%2Cc");
	/* Needs 11 bytes with the NUL. */
	assert_int_equal(mount_plan_encode("/a b,c", true, out, 10), -ENOSPC);
	assert_int_equal(mount_plan_encode("/a b,c", true, out, 11), 10);
	assert_int_equal(mount_plan_encode("", true, out, 1), 0);
}

static void test_enforces_limits(void **state)
{
	size_t size = 80 * (MOUNT_PLAN_MAX_MOUNTS + 1) + MOUNT_PLAN_MAX_TEXT;
	char *text = malloc(size), option_list[8 * (MOUNT_PLAN_MAX_OPTIONS + 1)] = "";
	size_t len = 0;

	(void)state;
	assert_non_null(text);
	for (int i = 0; i < MOUNT_PLAN_MAX_MOUNTS; i++)
		len += (size_t)snprintf(text + len, size - len, "mount type=tmpfs\n");
	parse_ok(text);
	assert_int_equal(plan.mount_count, MOUNT_PLAN_MAX_MOUNTS);
	assert_string_equal(plan.mounts[63].target, "/run/mnt/63");
	mount_plan_free(&plan);
	snprintf(text + len, size - len, "mount type=tmpfs\n");
	parse_fails(text, "line 65: more than 64 mounts");

	for (int i = 0; i < MOUNT_PLAN_MAX_OPTIONS; i++)
		strcat(option_list, i ? ",nodev" : "nodev");
	snprintf(text, size, "mount type=tmpfs options=%s\n", option_list);
	parse_ok(text);
	assert_int_equal(plan.mounts[0].option_count, MOUNT_PLAN_MAX_OPTIONS);
	mount_plan_free(&plan);
	snprintf(text, size, "mount type=tmpfs options=%s,nodev\n", option_list);
	parse_fails(text, "line 1: more than 32 options");

	/* The longest line, then one byte more. */
	len = (size_t)snprintf(text, size, "mount type=tmpfs");
	memset(text + len, ' ', MOUNT_PLAN_MAX_LINE - len);
	strcpy(text + MOUNT_PLAN_MAX_LINE, "\n");
	parse_ok(text);
	mount_plan_free(&plan);
	strcpy(text + MOUNT_PLAN_MAX_LINE, " \n");
	parse_fails(text, "line 1: longer than 8192 bytes");

	/* A value longer than a path, made of templates. */
	len = (size_t)snprintf(text, size, "mount type=tmpfs target=/%0200d\n"
			       "mount type=format/overlay options=lowerdir=", 0);
	for (int i = 0; i < 20; i++)
		len += (size_t)snprintf(text + len, size - len, "{{ overlay 0 0 }}");
	snprintf(text + len, size - len, "\n");
	parse_ok(text);
	mount_plan_free(&plan);
	snprintf(text + len, size - len, "{{ overlay 0 0 }}\n");
	parse_fails(text, "line 2: expands to more than 4095 bytes");

	memset(text, '\n', MOUNT_PLAN_MAX_TEXT + 1);
	assert_int_equal(mount_plan_parse(text, MOUNT_PLAN_MAX_TEXT, &plan, NULL, 0), 0);
	assert_int_equal(mount_plan_parse(text, MOUNT_PLAN_MAX_TEXT + 1, &plan, option_list,
					  sizeof(option_list)), -1);
	assert_string_equal(option_list, "the plan is 262145 bytes, more than 262144");
	free(text);
}

static void test_maps_flags(void **state)
{
	struct mount_plan_resolved resolved;
	struct mount_plan_syscall args;

	(void)state;
	parse_ok("mount type=bind source=/srv target=/run/mnt/ro options=rbind,ro,nosuid\n"
		 "mount type=bind source=/srv target=/run/mnt/rw options=bind,rw\n"
		 "mount type=tmpfs source=tmpfs options=nosuid,nodev,noexec,relatime,"
		 "mode=0755,size=64m,ro,rw\n"
		 "mount type=ext4 source=/dev/vdc options=noatime,strictatime,sync,dirsync,"
		 "lazytime,errors=remount-ro,X-containerd.anything,defaults\n");
	syscall_args(0, &resolved, &args);
	assert_null(args.fstype);
	assert_string_equal(args.source, "/srv");
	assert_int_equal(args.flags, MS_BIND | MS_REC);
	assert_int_equal(args.remount_flags, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID);
	mount_plan_resolved_free(&resolved);

	syscall_args(1, &resolved, &args);
	assert_int_equal(args.flags, MS_BIND);
	assert_int_equal(args.remount_flags, 0);
	mount_plan_resolved_free(&resolved);

	syscall_args(2, &resolved, &args);
	assert_string_equal(args.fstype, "tmpfs");
	assert_string_equal(args.source, "tmpfs");
	assert_int_equal(args.flags, MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME);
	assert_string_equal(args.data, "mode=0755,size=64m");
	mount_plan_resolved_free(&resolved);

	syscall_args(3, &resolved, &args);
	assert_string_equal(args.source, "/dev/vdc");
	assert_int_equal(args.flags, MS_STRICTATIME | MS_SYNCHRONOUS | MS_DIRSYNC | MS_LAZYTIME);
	assert_string_equal(args.data, "errors=remount-ro");
	mount_plan_resolved_free(&resolved);
}

static void test_reports_unknown_serial(void **state)
{
	struct mount_plan_resolved resolved;
	struct mount_plan_syscall args;
	char err[128];

	(void)state;
	parse_ok("mount type=erofs source=serial:missing\n");
	assert_int_equal(mount_plan_resolve(&plan, 0, &resolved, err, sizeof(err)), 0);
	assert_int_equal(mount_plan_syscall_args(&resolved, fake_serial, NULL, &args, err,
						 sizeof(err)), -1);
	assert_string_equal(err, "disk serial:missing: No such device");
	mount_plan_resolved_free(&resolved);
	assert_int_equal(mount_plan_resolve(&plan, 1, &resolved, err, sizeof(err)), -1);
	assert_string_equal(err, "no mount 1 in a plan of 1");
}

/* The executor's system calls, recorded one line each. */
static struct recorder {
	char calls[64][160];
	size_t count;
	const char *fail_call;	/* the call to fail, as recorded */
	int fail_errno;
	const char *existing[8];	/* paths mkdir finds */
	char log[64][256];
	size_t log_count;
} rec;

static int record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int record(const char *fmt, ...)
{
	va_list ap;
	char *call;

	assert_true(rec.count < ARRAY_LEN(rec.calls));
	call = rec.calls[rec.count++];
	va_start(ap, fmt);
	vsnprintf(call, sizeof(rec.calls[0]), fmt, ap);
	va_end(ap);
	if (rec.fail_call && !strcmp(call, rec.fail_call)) {
		errno = rec.fail_errno;
		return -1;
	}
	return 0;
}

static int record_mkdir(const char *path, mode_t mode)
{
	if (record("mkdir %s %04o", path, (unsigned int)mode) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_LEN(rec.existing) && rec.existing[i]; i++) {
		if (!strcmp(path, rec.existing[i])) {
			errno = EEXIST;
			return -1;
		}
	}
	return 0;
}

static int record_chmod(const char *path, mode_t mode)
{
	return record("chmod %s %04o", path, (unsigned int)mode);
}

static int record_chown(const char *path, uid_t uid, gid_t gid)
{
	return record("chown %s %u:%u", path, (unsigned int)uid, (unsigned int)gid);
}

static int record_mount(const char *source, const char *target, const char *fstype,
			unsigned long flags, const void *data)
{
	return record("mount %s %s %s 0x%lx %s", source ? source : "NULL", target,
		      fstype ? fstype : "NULL", flags, data ? (const char *)data : "NULL");
}

static int record_umount2(const char *target, int flags)
{
	return record("umount %s %d", target, flags);
}

static void record_log(void *ctx, const char *line)
{
	assert_ptr_equal(ctx, &rec);
	assert_true(rec.log_count < ARRAY_LEN(rec.log));
	snprintf(rec.log[rec.log_count++], sizeof(rec.log[0]), "%s", line);
}

static const struct mount_plan_ops recorder_ops = {
	.mkdir = record_mkdir,
	.chmod = record_chmod,
	.chown = record_chown,
	.mount = record_mount,
	.umount2 = record_umount2,
};

static const struct mount_plan_env recorder_env = {
	.ops = &recorder_ops,
	.resolve_serial = fake_serial,
	.log = record_log,
	.ctx = &rec,
};

static int reset_recorder(void **state)
{
	(void)state;
	memset(&rec, 0, sizeof(rec));
	rec.existing[0] = "/run";
	rec.existing[1] = "/run/mnt";
	return 0;
}

static void assert_calls(const char *const expected[], size_t count)
{
	for (size_t i = 0; i < count && i < rec.count; i++)
		if (strcmp(rec.calls[i], expected[i]))
			fail_msg("call %zu: \"%s\", expected \"%s\"", i, rec.calls[i], expected[i]);
	assert_int_equal(rec.count, count);
}

static const char *const one_lower_mounts[] = {
	"mkdir /run 0755",
	"mkdir /run/mnt 0755",
	"mkdir /run/mnt/l1 0755",
	"mount /dev/disk-layer1 /run/mnt/l1 erofs 0x1 NULL",
	"mkdir /run 0755",
	"mkdir /run/mnt 0755",
	"mkdir /run/mnt/upper 0755",
	"mount /dev/disk-upper /run/mnt/upper ext4 0x0 NULL",
	"mkdir /run 0755",
	"mkdir /run/mnt 0755",
	"mkdir /run/mnt/root 0755",
	"mkdir /run 0755",
	"mkdir /run/mnt 0755",
	"mkdir /run/mnt/upper 0755",
	"mkdir /run/mnt/upper/upper 0755",
	"chmod /run/mnt/upper/upper 0755",
	"mkdir /run 0755",
	"mkdir /run/mnt 0755",
	"mkdir /run/mnt/upper 0755",
	"mkdir /run/mnt/upper/work 0755",
	"chmod /run/mnt/upper/work 0755",
	"mount overlay /run/mnt/root overlay 0x0 upperdir=/run/mnt/upper/upper,"
	"workdir=/run/mnt/upper/work,lowerdir=/run/mnt/l1",
};

static void test_executes_in_order(void **state)
{
	char err[256] = "";

	(void)state;
	/* /run/mnt/upper exists once the disk is mounted there. */
	rec.existing[2] = "/run/mnt/upper";
	parse_ok(ONE_LOWER_PLAN);
	if (mount_plan_execute(&plan, &recorder_env, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_calls(one_lower_mounts, ARRAY_LEN(one_lower_mounts));
	assert_int_equal(rec.log_count, 8);
	assert_string_equal(rec.log[0], "mount 0: mkdir -p /run/mnt/l1");
	assert_string_equal(rec.log[1], "mount 0: mount -t erofs /dev/disk-layer1 /run/mnt/l1 "
			    "flags 0x1 data \"\"");
	assert_string_equal(rec.log[5], "mount 2: mkdir -p -m 0755 /run/mnt/upper/upper");
	assert_string_equal(rec.log[7], "mount 2: mount -t overlay overlay /run/mnt/root "
			    "flags 0x0 data \"upperdir=/run/mnt/upper/upper,"
			    "workdir=/run/mnt/upper/work,lowerdir=/run/mnt/l1\"");
}

static void test_sets_owner_then_mode_of_new_directories_only(void **state)
{
	static const char *const expected[] = {
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/0 0755",
		"mount none /run/mnt/0 tmpfs 0x0 NULL",
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/1 0755",
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/0 0755",
		"mkdir /run/mnt/0/a 0755",
		"mkdir /run/mnt/0/a/b 2770",
		"chown /run/mnt/0/a/b 5:6",
		"chmod /run/mnt/0/a/b 2770",
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/0 0755",
		"mkdir /run/mnt/0/old 0700",
		"mount none /run/mnt/1 tmpfs 0x0 NULL",
	};
	char err[256];

	(void)state;
	rec.existing[2] = "/run/mnt/0";
	rec.existing[3] = "/run/mnt/0/old";
	parse_ok("mount type=tmpfs\nmount type=mkdir/tmpfs options="
		 "X-containerd.mkdir.path=/run/mnt/0/a/b:2770:5:6,"
		 "X-containerd.mkdir.path=/run/mnt/0/old:0700:7:8\n");
	assert_int_equal(mount_plan_execute(&plan, &recorder_env, err, sizeof(err)), 0);
	assert_calls(expected, ARRAY_LEN(expected));
	assert_string_equal(rec.log[4], "mount 1: chown 5:6 /run/mnt/0/a/b");
	assert_string_equal(rec.log[6], "mount 1: /run/mnt/0/old exists; its mode and owner stay");
}

static void test_remounts_read_only_bind(void **state)
{
	static const char *const expected[] = {
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/0 0755",
		"mount /etc/resolv.conf.d /run/mnt/0 NULL 0x1000 NULL",
		"mount NULL /run/mnt/0 NULL 0x102b NULL",
	};
	char err[256];

	(void)state;
	parse_ok("mount type=bind source=/etc/resolv.conf.d options=ro,nosuid,noexec\n");
	assert_int_equal(mount_plan_execute(&plan, &recorder_env, err, sizeof(err)), 0);
	assert_int_equal(MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, 0x102b);
	assert_calls(expected, ARRAY_LEN(expected));
	assert_string_equal(rec.log[2], "mount 0: remount /run/mnt/0 flags 0x102b");
}

static void test_undoes_mounts_on_failure(void **state)
{
	const char *expected[ARRAY_LEN(one_lower_mounts) + 2];
	char err[256];

	(void)state;
	memcpy(expected, one_lower_mounts, sizeof(one_lower_mounts));
	expected[ARRAY_LEN(one_lower_mounts)] = "umount /run/mnt/upper 0";
	expected[ARRAY_LEN(one_lower_mounts) + 1] = "umount /run/mnt/l1 0";
	rec.existing[2] = "/run/mnt/upper";
	rec.fail_call = one_lower_mounts[ARRAY_LEN(one_lower_mounts) - 1];
	rec.fail_errno = EINVAL;
	parse_ok(ONE_LOWER_PLAN);
	assert_int_equal(mount_plan_execute(&plan, &recorder_env, err, sizeof(err)), -1);
	assert_string_equal(err, "mount 2 (format/mkdir/overlay at /run/mnt/root): mount: "
			    "Invalid argument");
	assert_calls(expected, ARRAY_LEN(expected));
	assert_string_equal(rec.log[rec.log_count - 3], err);
	assert_string_equal(rec.log[rec.log_count - 2], "undo: umount /run/mnt/upper");
	assert_string_equal(rec.log[rec.log_count - 1], "undo: umount /run/mnt/l1");
}

static void test_undoes_bind_whose_remount_failed(void **state)
{
	static const char *const expected[] = {
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/0 0755",
		"mount none /run/mnt/0 tmpfs 0x0 NULL",
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/1 0755",
		"mount /srv /run/mnt/1 NULL 0x1000 NULL",
		"mount NULL /run/mnt/1 NULL 0x1021 NULL",
		"umount /run/mnt/1 0",
		"umount /run/mnt/0 0",
	};
	char err[256];

	(void)state;
	rec.fail_call = "mount NULL /run/mnt/1 NULL 0x1021 NULL";
	rec.fail_errno = EPERM;
	parse_ok("mount type=tmpfs\nmount type=bind source=/srv options=ro\n");
	assert_int_equal(mount_plan_execute(&plan, &recorder_env, err, sizeof(err)), -1);
	assert_string_equal(err, "mount 1 (bind at /run/mnt/1): remount: Operation not permitted");
	assert_calls(expected, ARRAY_LEN(expected));
}

static void test_reports_failed_mkdir_and_missing_disk(void **state)
{
	static const char *const expected[] = {
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/0 0755",
		"mount none /run/mnt/0 tmpfs 0x0 NULL",
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/1 0755",
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/0 0755",
		"mkdir /run/mnt/0/x 0700",
		"umount /run/mnt/0 0",
	};
	static const char *const missing_disk[] = {
		"mkdir /run 0755",
		"mkdir /run/mnt 0755",
		"mkdir /run/mnt/0 0755",
		"mount none /run/mnt/0 tmpfs 0x0 NULL",
		"umount /run/mnt/0 0",
	};
	char err[256];

	(void)state;
	rec.fail_call = "mkdir /run/mnt/0/x 0700";
	rec.fail_errno = ENOSPC;
	parse_ok("mount type=tmpfs\nmount type=mkdir/tmpfs options=X-containerd.mkdir.path=/run/mnt/0/x\n");
	assert_int_equal(mount_plan_execute(&plan, &recorder_env, err, sizeof(err)), -1);
	assert_string_equal(err, "mount 1 (mkdir/tmpfs at /run/mnt/1): mkdir /run/mnt/0/x: "
			    "No space left on device");
	assert_calls(expected, ARRAY_LEN(expected));
	mount_plan_free(&plan);

	reset_recorder(NULL);
	parse_ok("mount type=tmpfs\nmount type=ext4 source=serial:missing name=m\n");
	assert_int_equal(mount_plan_execute(&plan, &recorder_env, err, sizeof(err)), -1);
	assert_string_equal(err, "mount 1 (ext4 at /run/mnt/m): source: "
			    "disk serial:missing: No such device");
	assert_calls(missing_disk, ARRAY_LEN(missing_disk));
}

static void write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), strlen(content));
	close(fd);
}

static void test_finds_disks_by_serial(void **state)
{
	char dir[] = "/tmp/test_mount_plan.XXXXXX", path[PATH_MAX], dev[32];
	static const char *const disks[][2] = {
		{ "vda", "layer1\n" }, { "vdb", "upper\n" }, { "vdc", "12345678901234567890" },
		{ "vdd", "dup\n" }, { "vde", "dup\n" },
	};

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < ARRAY_LEN(disks); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, disks[i][0]);
		assert_int_equal(mkdir(path, 0755), 0);
		snprintf(path, sizeof(path), "%s/%s/serial", dir, disks[i][0]);
		write_file(path, disks[i][1]);
	}
	snprintf(path, sizeof(path), "%s/loop0", dir);	/* no serial file */
	assert_int_equal(mkdir(path, 0755), 0);

	assert_int_equal(mount_plan_find_disk(dir, "upper", dev, sizeof(dev)), 0);
	assert_string_equal(dev, "/dev/vdb");
	assert_int_equal(mount_plan_find_disk(dir, "12345678901234567890", dev, sizeof(dev)), 0);
	assert_string_equal(dev, "/dev/vdc");
	assert_int_equal(mount_plan_find_disk(dir, "layer", dev, sizeof(dev)), -ENODEV);
	assert_int_equal(mount_plan_find_disk(dir, "dup", dev, sizeof(dev)), -EEXIST);
	assert_int_equal(mount_plan_find_disk(dir, "layer1", dev, 8), -ENAMETOOLONG);
	assert_int_equal(mount_plan_find_disk(dir, "layer1", dev, 9), 0);
	assert_string_equal(dev, "/dev/vda");

	for (size_t i = 0; i < ARRAY_LEN(disks); i++) {
		snprintf(path, sizeof(path), "%s/%s/serial", dir, disks[i][0]);
		assert_int_equal(unlink(path), 0);
		snprintf(path, sizeof(path), "%s/%s", dir, disks[i][0]);
		assert_int_equal(rmdir(path), 0);
	}
	snprintf(path, sizeof(path), "%s/loop0", dir);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(mount_plan_find_disk(dir, "upper", dev, sizeof(dev)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_parses_one_lower_snapshotter_plan, teardown),
		cmocka_unit_test_teardown(test_parses_two_lower_snapshotter_plan, teardown),
		cmocka_unit_test_teardown(test_expands_templates, teardown),
		cmocka_unit_test_teardown(test_rejects_bad_templates, teardown),
		cmocka_unit_test_teardown(test_rejects_bad_mkdir_directives, teardown),
		cmocka_unit_test_teardown(test_rejects_bad_types_and_fields, teardown),
		cmocka_unit_test_teardown(test_rejects_nul_bytes, teardown),
		cmocka_unit_test_teardown(test_round_trips_special_characters, teardown),
		cmocka_unit_test(test_encodes_known_example),
		cmocka_unit_test_teardown(test_enforces_limits, teardown),
		cmocka_unit_test_teardown(test_maps_flags, teardown),
		cmocka_unit_test_teardown(test_reports_unknown_serial, teardown),
		cmocka_unit_test_setup_teardown(test_executes_in_order, reset_recorder, teardown),
		cmocka_unit_test_setup_teardown(test_sets_owner_then_mode_of_new_directories_only,
						reset_recorder, teardown),
		cmocka_unit_test_setup_teardown(test_remounts_read_only_bind, reset_recorder, teardown),
		cmocka_unit_test_setup_teardown(test_undoes_mounts_on_failure, reset_recorder, teardown),
		cmocka_unit_test_setup_teardown(test_undoes_bind_whose_remount_failed, reset_recorder,
						teardown),
		cmocka_unit_test_setup_teardown(test_reports_failed_mkdir_and_missing_disk,
						reset_recorder, teardown),
		cmocka_unit_test(test_finds_disks_by_serial),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
