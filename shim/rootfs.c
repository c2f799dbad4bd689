/*
 * rootfs.c - from containerd's rootfs mount list to disks and a mount
 * plan; the layouts and rules are in shim/rootfs.h.
 */
#include "shim/rootfs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim/text.h"

#define MESSAGE_SIZE 512
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *const kind_names[] = {
	[ROOTFS_OVERLAY] = "overlay",
	[ROOTFS_NATIVE] = "native",
	[ROOTFS_EROFS] = "erofs",
	[ROOTFS_BLOCK_DEVICE] = "block-device",
};

const char *rootfs_kind_name(enum rootfs_kind kind)
{
	return (unsigned int)kind < ARRAY_LEN(kind_names) ? kind_names[kind] : "unknown";
}

/* The plan text under construction; a failed append sticks. */
struct plan_text {
	struct shim_text text;
	size_t mount_count;
	size_t option_count;	/* of the current mount line */
};

static void plan_append(struct plan_text *p, const char *s, size_t n)
{
	shim_text_append(&p->text, s, n);
}

static void plan_puts(struct plan_text *p, const char *s)
{
	plan_append(p, s, strlen(s));
}

/*
 * Appends @value encoded as a plan VALUE (vmm/mount_plan.h), ',' too in
 * an option; spaces inside "{{ }}" stay as they are, for readability.
 */
static void plan_value(struct plan_text *p, const char *value, bool in_option)
{
	static const char hex[] = "0123456789ABCDEF";
	bool in_template = false;

	for (const unsigned char *s = (const unsigned char *)value; *s; s++) {
		char escaped[3] = { '%', hex[*s >> 4], hex[*s & 0xf] };

		if (!strncmp((const char *)s, in_template ? "}}" : "{{", 2))
			in_template = !in_template;
		if (*s == ' ' && in_template)
			plan_append(p, " ", 1);
		else if (*s < 0x21 || *s > 0x7e || *s == '%' || (in_option && *s == ','))
			plan_append(p, escaped, 3);
		else
			plan_append(p, (const char *)s, 1);
	}
}

/* Starts a mount line; @source (optional), a label or a template, is encoded. */
static void plan_mount(struct plan_text *p, const char *type, const char *source,
		       const char *name)
{
	plan_puts(p, "mount type=");
	plan_puts(p, type);
	if (source) {
		plan_puts(p, " source=");
		plan_value(p, source, false);
	}
	plan_puts(p, " name=");
	plan_puts(p, name);
	p->option_count = 0;
	p->mount_count++;
}

/* Starts the mount line of a disk. */
static void plan_disk_mount(struct plan_text *p, const char *fstype, const struct disk *disk,
			    const char *name)
{
	char source[DISK_SERIAL_MAX + 8];

	snprintf(source, sizeof(source), "serial:%s", disk->serial);
	plan_mount(p, fstype, source, name);
}

static void plan_option(struct plan_text *p, const char *option)
{
	plan_puts(p, p->option_count ? "," : " options=");
	plan_value(p, option, true);
	p->option_count++;
}

static void plan_end_line(struct plan_text *p)
{
	plan_puts(p, "\n");
}

struct classify {
	const struct rootfs_mount *mounts;
	size_t count;
	const char *bundle;
	uint64_t writable_size;
	struct disk_set *disks;
	struct plan_text plan;
	char *err;
	size_t err_size;
};

static int mount_error(struct classify *c, size_t index, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int mount_error(struct classify *c, size_t index, const char *fmt, ...)
{
	const struct rootfs_mount *m = &c->mounts[index];
	char msg[MESSAGE_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return shim_error(c->err, c->err_size, "rootfs mount %zu (%s %s): %s", index,
			 m->type[0] ? m->type : "\"\"", m->source[0] ? m->source : "\"\"", msg);
}

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* Whether @m is read-only: the last of its "ro" and "rw" options counts. */
static bool is_read_only(const struct rootfs_mount *m)
{
	bool read_only = false;

	for (size_t i = 0; i < m->option_count; i++) {
		if (!strcmp(m->options[i], "ro"))
			read_only = true;
		else if (!strcmp(m->options[i], "rw"))
			read_only = false;
	}
	return read_only;
}

static bool has_option(const struct rootfs_mount *m, const char *option)
{
	for (size_t i = 0; i < m->option_count; i++)
		if (!strcmp(m->options[i], option))
			return true;
	return false;
}

/*
 * Finds option "@prefix VALUE" of mount @index: 0 with *@value NULL when
 * absent, -1 when given twice.
 */
static int find_option(struct classify *c, size_t index, const char *prefix, const char **value)
{
	const struct rootfs_mount *m = &c->mounts[index];

	*value = NULL;
	for (size_t i = 0; i < m->option_count; i++) {
		if (!starts_with(m->options[i], prefix))
			continue;
		if (*value)
			return mount_error(c, index, "option %.*s given twice",
					   (int)strlen(prefix) - 1, prefix);
		*value = m->options[i] + strlen(prefix);
	}
	return 0;
}

static const char *mount_name(size_t plan_index, bool is_root, char *buf, size_t size)
{
	if (is_root)
		return "rootfs";
	snprintf(buf, size, "rootfs.%zu", plan_index);
	return buf;
}

/* Adds a disk; on failure the error names mount @index. */
static struct disk *add_disk(struct classify *c, size_t index, const struct disk_spec *spec)
{
	char msg[MESSAGE_SIZE];
	struct disk *disk = disk_set_add(c->disks, spec, msg, sizeof(msg));

	if (!disk)
		mount_error(c, index, "%s", msg);
	return disk;
}

static int add_extent(struct classify *c, size_t index, struct disk *disk, const char *path)
{
	char msg[MESSAGE_SIZE];

	if (disk_add_extent(disk, path, 0, 0, msg, sizeof(msg)) < 0)
		return mount_error(c, index, "%s", msg);
	return 0;
}

/* The bundle's file @name, in @buf. */
static int bundle_file(struct classify *c, size_t index, const char *name, char *buf, size_t size)
{
	if ((size_t)snprintf(buf, size, "%s/%s", c->bundle, name) >= size)
		return mount_error(c, index, "bundle path \"%s\" is too long", c->bundle);
	return 0;
}

/*
 * Adds the writable layer (a new ext4 image in the bundle, as plan mount
 * @upper) and the overlay root over plan mounts 0..@upper-1 (top first),
 * with @m's options other than the overlay paths.
 */
static int plan_writable_overlay(struct classify *c, size_t upper, const char *require_empty)
{
	struct disk_spec spec = {
		.role = DISK_ROLE_ROOTFS, .source = DISK_NEW_EXT4,
		.size = c->writable_size, .require_empty = require_empty,
	};
	const struct rootfs_mount *m = &c->mounts[0];
	char path[PATH_MAX], name[32], option[128];
	struct disk *disk;

	if (bundle_file(c, 0, ROOTFS_UPPER_IMAGE, path, sizeof(path)) < 0)
		return -1;
	disk = add_disk(c, 0, &spec);
	if (!disk || add_extent(c, 0, disk, path) < 0)
		return -1;
	plan_disk_mount(&c->plan, "ext4", disk, mount_name(upper, false, name, sizeof(name)));
	plan_option(&c->plan, "rw");
	plan_end_line(&c->plan);

	plan_mount(&c->plan, "format/mkdir/overlay", "overlay", "rootfs");
	snprintf(option, sizeof(option), "X-containerd.mkdir.path={{ mount %zu }}/upper:0755", upper);
	plan_option(&c->plan, option);
	snprintf(option, sizeof(option), "X-containerd.mkdir.path={{ mount %zu }}/work:0700", upper);
	plan_option(&c->plan, option);
	snprintf(option, sizeof(option), "upperdir={{ mount %zu }}/upper", upper);
	plan_option(&c->plan, option);
	snprintf(option, sizeof(option), "workdir={{ mount %zu }}/work", upper);
	plan_option(&c->plan, option);
	if (upper == 1)
		snprintf(option, sizeof(option), "lowerdir={{ mount 0 }}");
	else
		snprintf(option, sizeof(option), "lowerdir={{ overlay 0 %zu }}", upper - 1);
	plan_option(&c->plan, option);
	if (!strcmp(m->type, "overlay")) {
		for (size_t i = 0; i < m->option_count; i++)
			if (!starts_with(m->options[i], "lowerdir=") &&
			    !starts_with(m->options[i], "upperdir=") &&
			    !starts_with(m->options[i], "workdir="))
				plan_option(&c->plan, m->options[i]);
	}
	plan_end_line(&c->plan);
	return 0;
}

/* Checks @path is an absolute host path fit for a layer directory. */
static int check_host_dir(struct classify *c, size_t index, const char *what, const char *path)
{
	if (path[0] != '/')
		return mount_error(c, index, "%s \"%s\" is not an absolute path", what, path);
	return 0;
}

static int classify_overlay(struct classify *c, bool *read_only)
{
	const char *lowerdir, *upperdir, *workdir;
	char name[32], dir[PATH_MAX];
	size_t layers = 1;

	if (find_option(c, 0, "lowerdir=", &lowerdir) < 0 ||
	    find_option(c, 0, "upperdir=", &upperdir) < 0 ||
	    find_option(c, 0, "workdir=", &workdir) < 0)
		return -1;
	if (!lowerdir)
		return mount_error(c, 0, "no lowerdir option");
	if (!*lowerdir)
		return mount_error(c, 0, "empty lowerdir");
	if (!upperdir != !workdir)
		return mount_error(c, 0, "%s without %s", upperdir ? "upperdir" : "workdir",
				   upperdir ? "workdir" : "upperdir");
	if (upperdir && check_host_dir(c, 0, "upperdir", upperdir) < 0)
		return -1;
	for (const char *p = lowerdir; *p; p++)
		layers += *p == ':';
	if (layers > ROOTFS_MAX_LAYERS)
		return mount_error(c, 0, "%zu lower layers, more than the %d a VM root takes",
				   layers, ROOTFS_MAX_LAYERS);

	for (size_t i = 0; i < layers; i++) {
		size_t len = strcspn(lowerdir, ":");
		struct disk_spec spec = {
			.role = DISK_ROLE_ROOTFS, .source = DISK_LAYER, .read_only = true,
			.directory = dir,
		};
		bool is_root = !upperdir && layers == 1;
		struct disk *disk;

		if (len == 0)
			return mount_error(c, 0, "lowerdir element %zu is empty", i);
		if (len >= sizeof(dir))
			return mount_error(c, 0, "lowerdir element %zu is too long", i);
		memcpy(dir, lowerdir, len);
		dir[len] = '\0';
		lowerdir += len + (lowerdir[len] == ':');
		if (check_host_dir(c, 0, "lowerdir element", dir) < 0)
			return -1;
		disk = add_disk(c, 0, &spec);
		if (!disk)
			return -1;
		plan_disk_mount(&c->plan, "erofs", disk, mount_name(i, is_root, name, sizeof(name)));
		plan_option(&c->plan, "ro");
		plan_end_line(&c->plan);
	}
	*read_only = !upperdir;
	if (upperdir)
		return plan_writable_overlay(c, layers, upperdir);
	if (layers > 1) {
		const struct rootfs_mount *m = &c->mounts[0];
		char option[64];

		plan_mount(&c->plan, "format/overlay", "overlay", "rootfs");
		snprintf(option, sizeof(option), "lowerdir={{ overlay 0 %zu }}", layers - 1);
		plan_option(&c->plan, option);
		for (size_t i = 0; i < m->option_count; i++)
			if (!starts_with(m->options[i], "lowerdir="))
				plan_option(&c->plan, m->options[i]);
		plan_end_line(&c->plan);
	}
	return 0;
}

static int classify_native(struct classify *c, bool *read_only)
{
	const struct rootfs_mount *m = &c->mounts[0];
	struct disk_spec spec = {
		.role = DISK_ROLE_ROOTFS, .source = DISK_DIRECTORY, .read_only = true,
		.directory = m->source,
	};
	char path[PATH_MAX];
	struct disk *disk;

	if (!has_option(m, "bind") && !has_option(m, "rbind"))
		return mount_error(c, 0, "a bind mount without a bind or rbind option");
	for (size_t i = 0; i < m->option_count; i++) {
		const char *o = m->options[i];

		if (strcmp(o, "bind") && strcmp(o, "rbind") && strcmp(o, "ro") && strcmp(o, "rw"))
			return mount_error(c, 0, "option \"%s\": a directory root takes only "
					   "bind, rbind, ro and rw", o);
	}
	if (check_host_dir(c, 0, "source", m->source) < 0 ||
	    bundle_file(c, 0, ROOTFS_DIRECTORY_IMAGE, path, sizeof(path)) < 0)
		return -1;
	disk = add_disk(c, 0, &spec);
	if (!disk || add_extent(c, 0, disk, path) < 0)
		return -1;
	*read_only = is_read_only(m);
	plan_disk_mount(&c->plan, "erofs", disk, *read_only ? "rootfs" : "rootfs.0");
	plan_option(&c->plan, "ro");
	plan_end_line(&c->plan);
	/* The directory is the whole snapshot: nothing else must be empty. */
	return *read_only ? 0 : plan_writable_overlay(c, 1, NULL);
}

/* Reads " N" (spaces, then decimal digits) at *@s into @value. */
static int read_index(const char **s, unsigned long *value)
{
	const char *digits = *s + strspn(*s, " ");
	size_t n = strspn(digits, "0123456789");

	if (digits == *s || n == 0 || n > 3)
		return -1;
	*value = strtoul(digits, NULL, 10);
	*s = digits + n;
	return 0;
}

/*
 * Checks the templates in @value of mount @index: known functions, mount
 * indexes before @index, no "source" (a host path the guest lacks).
 */
static int check_templates(struct classify *c, size_t index, const char *value)
{
	const char *p = value;

	for (;;) {
		const char *open = strstr(p, "{{"), *end = strstr(p, "}}"), *s;
		unsigned long first, second;
		size_t name_len;

		if (end && (!open || end < open))
			return mount_error(c, index, "\"%s\": \"}}\" without \"{{\"", value);
		if (!open)
			return 0;
		if (!end)
			return mount_error(c, index, "\"%s\": \"{{\" without \"}}\"", value);
		s = open + 2;
		s += strspn(s, " ");
		name_len = strspn(s, "abcdefghijklmnopqrstuvwxyz");
		if (name_len == 6 && !strncmp(s, "source", 6))
			return mount_error(c, index, "\"%s\": {{ source N }} is a host path, "
					   "which the VM does not have", value);
		if (!((name_len == 5 && !strncmp(s, "mount", 5)) ||
		      (name_len == 6 && !strncmp(s, "target", 6)) ||
		      (name_len == 7 && !strncmp(s, "overlay", 7))))
			return mount_error(c, index, "\"%s\": unknown template function \"%.*s\"",
					   value, (int)name_len, s);
		s += name_len;
		second = 0;
		if (read_index(&s, &first) < 0 || (name_len == 7 && read_index(&s, &second) < 0))
			return mount_error(c, index, "\"%s\": malformed template", value);
		s += strspn(s, " ");
		if (s != end)
			return mount_error(c, index, "\"%s\": malformed template", value);
		if (first >= index || (name_len == 7 && second >= index))
			return mount_error(c, index, "\"%s\": refers to mount %lu, not an earlier mount",
					   value, first >= index ? first : second);
		p = end + 2;
	}
}

/* Whether @option is for the host only: dropped from the guest's plan. */
static bool host_only_option(const char *option)
{
	return !strcmp(option, "loop") || starts_with(option, "device=") ||
	       (starts_with(option, "X-containerd.") &&
		!starts_with(option, "X-containerd.mkdir.path="));
}

/* A disk-backed mount of a mount list: mkfs/ext4, ext4 or erofs. */
static int plan_list_disk(struct classify *c, size_t index, const char *fstype)
{
	const struct rootfs_mount *m = &c->mounts[index];
	bool is_mkfs = starts_with(m->type, "mkfs/");
	struct disk_spec spec = {
		.role = DISK_ROLE_ROOTFS,
		.source = is_mkfs ? DISK_NEW_EXT4 : DISK_FILES,
		.read_only = !strcmp(fstype, "erofs") || is_read_only(m),
	};
	char name[32];
	struct disk *disk;

	if (m->source[0] != '/')
		return mount_error(c, index, "the source is not an absolute path");
	if (is_mkfs) {
		const char *fs, *size;
		char *end;

		if (find_option(c, index, "X-containerd.mkfs.fs=", &fs) < 0 ||
		    find_option(c, index, "X-containerd.mkfs.size=", &size) < 0)
			return -1;
		if (fs && strcmp(fs, "ext4"))
			return mount_error(c, index, "X-containerd.mkfs.fs=%s: only ext4 is made", fs);
		spec.size = c->writable_size;
		if (size) {
			errno = 0;
			spec.size = strtoull(size, &end, 10);
			if (errno || end == size || *end || *size == '-' || !spec.size)
				return mount_error(c, index, "X-containerd.mkfs.size=%s is not a size "
						   "in bytes", size);
		}
	}
	disk = add_disk(c, index, &spec);
	if (!disk || add_extent(c, index, disk, m->source) < 0)
		return -1;
	for (size_t i = 0; i < m->option_count; i++)
		if (starts_with(m->options[i], "device=") &&
		    add_extent(c, index, disk, m->options[i] + strlen("device=")) < 0)
			return -1;
	if (disk->extent_count > 1 && strcmp(fstype, "erofs"))
		return mount_error(c, index, "device= options belong to erofs mounts");
	plan_disk_mount(&c->plan, fstype, disk,
			mount_name(index, index == c->count - 1, name, sizeof(name)));
	for (size_t i = 0; i < m->option_count; i++) {
		if (starts_with(m->options[i], "X-containerd.mkdir.path="))
			return mount_error(c, index, "mkdir directives need a mkdir/ type");
		if (!host_only_option(m->options[i]))
			plan_option(&c->plan, m->options[i]);
	}
	plan_end_line(&c->plan);
	return 0;
}

/* The last mount of a list: format/[mkdir/]overlay or format/[mkdir/]bind. */
static int plan_list_format(struct classify *c, size_t index)
{
	const struct rootfs_mount *m = &c->mounts[index];
	const char *fstype = m->type + strlen("format/");

	if (starts_with(fstype, "mkdir/"))
		fstype += strlen("mkdir/");
	if (strcmp(fstype, "overlay") && strcmp(fstype, "bind"))
		return mount_error(c, index, "a format/ mount of %s: only overlay and bind are "
				   "assembled in the guest", fstype);
	if (index != c->count - 1)
		return mount_error(c, index, "only the last mount of the list can be a format/ mount");
	if (m->target[0])
		return mount_error(c, index, "a target inside the root is not supported");
	if (check_templates(c, index, m->source) < 0)
		return -1;
	if (!strcmp(fstype, "bind") && !starts_with(m->source, "{{"))
		return mount_error(c, index, "the bind source is a host path, not a template of "
				   "an earlier mount");
	for (size_t i = 0; i < m->option_count; i++) {
		const char *o = m->options[i];
		const char *value = strchr(o, '=');

		if (check_templates(c, index, o) < 0)
			return -1;
		if ((starts_with(o, "lowerdir=") || starts_with(o, "upperdir=") ||
		     starts_with(o, "workdir=")) && !starts_with(value + 1, "{{"))
			return mount_error(c, index, "option \"%s\" names a host path, not a "
					   "template of an earlier mount", o);
	}
	plan_mount(&c->plan, m->type, m->source[0] ? m->source : NULL, "rootfs");
	for (size_t i = 0; i < m->option_count; i++)
		if (!host_only_option(m->options[i]))
			plan_option(&c->plan, m->options[i]);
	plan_end_line(&c->plan);
	return 0;
}

static int classify_list(struct classify *c, bool *read_only)
{
	*read_only = true;
	for (size_t i = 0; i < c->count; i++) {
		const struct rootfs_mount *m = &c->mounts[i];
		size_t disks_before = c->disks->count;
		int rc;

		if (!strcmp(m->type, "mkfs/ext4") || !strcmp(m->type, "ext4"))
			rc = plan_list_disk(c, i, "ext4");
		else if (!strcmp(m->type, "erofs"))
			rc = plan_list_disk(c, i, "erofs");
		else if (starts_with(m->type, "format/"))
			rc = plan_list_format(c, i);
		else if (starts_with(m->type, "mkfs/"))
			rc = mount_error(c, i, "only ext4 is made (mkfs/ext4)");
		else if (!strcmp(m->type, "overlay") || !strcmp(m->type, "bind"))
			rc = mount_error(c, i, "in a list of mounts, %s needs a format/ type whose "
					 "paths are templates of earlier mounts", m->type);
		else
			rc = mount_error(c, i, "unsupported mount type: the guest assembles ext4, "
					 "erofs, mkfs/ext4 and format/ overlay or bind mounts");
		if (rc < 0)
			return -1;
		if (c->disks->count > disks_before && !c->disks->disks[disks_before].read_only)
			*read_only = false;
	}
	return 0;
}

static enum rootfs_kind kind_of(const struct rootfs_mount *mounts, size_t count)
{
	if (count == 1 && !strcmp(mounts[0].type, "overlay"))
		return ROOTFS_OVERLAY;
	if (count == 1 && !strcmp(mounts[0].type, "bind"))
		return ROOTFS_NATIVE;
	if (count == 1 && starts_with(mounts[0].source, "/dev/"))
		return ROOTFS_BLOCK_DEVICE;
	return ROOTFS_EROFS;
}

/* The plan must be one guest-init accepts: parse it as vmm-run would. */
static int check_plan(struct classify *c)
{
	struct mount_plan *plan = malloc(sizeof(*plan));
	char msg[MESSAGE_SIZE];
	int rc;

	if (!plan)
		return shim_error(c->err, c->err_size, "out of memory");
	rc = mount_plan_parse(c->plan.text.data, c->plan.text.len, plan, msg, sizeof(msg));
	if (rc == 0)
		mount_plan_free(plan);
	free(plan);
	if (rc < 0)
		return shim_error(c->err, c->err_size,
				 "rootfs mounts: guest-init would refuse the mount plan: %s\n%s",
				 msg, c->plan.text.data);
	return 0;
}

int rootfs_classify(const struct rootfs_mount *mounts, size_t count,
		    const struct rootfs_options *options, struct disk_set *disks,
		    struct rootfs_layout *layout, char *err, size_t err_size)
{
	struct classify c = {
		.mounts = mounts, .count = count, .bundle = options->bundle,
		.writable_size = options->writable_size ? options->writable_size
							: ROOTFS_DEFAULT_WRITABLE_SIZE,
		.disks = disks, .err = err, .err_size = err_size,
	};
	size_t first_disk = disks->count;
	bool read_only = false;
	int rc;

	memset(layout, 0, sizeof(*layout));
	if (!options->bundle || options->bundle[0] != '/')
		return shim_error(err, err_size, "the bundle path is not absolute");
	if (count == 0)
		return shim_error(err, err_size, "no rootfs mounts: a bundle whose rootfs is "
				 "already in place is not supported");
	for (size_t i = 0; i < count; i++)
		if (!mounts[i].type || !mounts[i].source || !mounts[i].target ||
		    (mounts[i].option_count && !mounts[i].options))
			return shim_error(err, err_size, "rootfs mount %zu: missing fields", i);
	layout->kind = kind_of(mounts, count);
	plan_puts(&c.plan, "# erovm rootfs: ");
	plan_puts(&c.plan, kind_names[layout->kind]);
	plan_puts(&c.plan, "\n");
	switch (layout->kind) {
	case ROOTFS_OVERLAY:
		rc = classify_overlay(&c, &read_only);
		break;
	case ROOTFS_NATIVE:
		rc = classify_native(&c, &read_only);
		break;
	default:
		rc = classify_list(&c, &read_only);
		break;
	}
	if (rc == 0) {
		plan_puts(&c.plan, "root " ROOTFS_ROOT "\n");
		if (c.plan.text.out_of_memory)
			rc = shim_error(err, err_size, "out of memory");
		else
			rc = check_plan(&c);
	}
	if (rc < 0) {
		free(c.plan.text.data);
		disk_set_truncate(disks, first_disk);
		return -1;
	}
	layout->read_only = read_only;
	layout->plan = c.plan.text.data;
	layout->first_disk = first_disk;
	layout->disk_count = disks->count - first_disk;
	return 0;
}

void rootfs_layout_free(struct rootfs_layout *layout)
{
	free(layout->plan);
	memset(layout, 0, sizeof(*layout));
}

json_object *rootfs_layout_to_json(const struct rootfs_layout *layout,
				   const struct disk_set *disks)
{
	json_object *obj = json_object_new_object();
	json_object *fields[] = {
		json_object_new_string(kind_names[layout->kind]),
		json_object_new_boolean(layout->read_only),
		json_object_new_string(layout->plan),
		json_object_new_int64((int64_t)layout->first_disk),
		json_object_new_int64((int64_t)layout->disk_count),
		disk_set_to_json(disks),
	};
	static const char *const keys[] = {
		"kind", "read_only", "plan", "first_disk", "disk_count", "disks",
	};
	bool ok = obj != NULL;

	for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
		if (ok && fields[i] && !json_object_object_add(obj, keys[i], fields[i]))
			continue;
		ok = false;
		json_object_put(fields[i]);
	}
	if (ok)
		return obj;
	json_object_put(obj);
	return NULL;
}

static int get_field(json_object *obj, const char *key, json_type type, json_object **field,
		     char *err, size_t err_size)
{
	if (!json_object_object_get_ex(obj, key, field) || !json_object_is_type(*field, type))
		return shim_error(err, err_size, "rootfs record: \"%s\" is missing or not a %s",
				 key, json_type_to_name(type));
	return 0;
}

int rootfs_layout_from_json(json_object *json, struct rootfs_layout *layout,
			    struct disk_set *disks, char *err, size_t err_size)
{
	json_object *kind, *read_only, *plan_text, *first, *count, *disk_array;
	struct mount_plan *plan;
	char msg[MESSAGE_SIZE];
	int64_t first_disk, disk_count;
	size_t kind_index;
	int rc;

	memset(layout, 0, sizeof(*layout));
	disk_set_init(disks);
	if (!json_object_is_type(json, json_type_object))
		return shim_error(err, err_size, "rootfs record: not an object");
	if (get_field(json, "kind", json_type_string, &kind, err, err_size) < 0 ||
	    get_field(json, "read_only", json_type_boolean, &read_only, err, err_size) < 0 ||
	    get_field(json, "plan", json_type_string, &plan_text, err, err_size) < 0 ||
	    get_field(json, "first_disk", json_type_int, &first, err, err_size) < 0 ||
	    get_field(json, "disk_count", json_type_int, &count, err, err_size) < 0 ||
	    get_field(json, "disks", json_type_array, &disk_array, err, err_size) < 0)
		return -1;
	for (kind_index = 0; kind_index < ARRAY_LEN(kind_names); kind_index++)
		if (!strcmp(kind_names[kind_index], json_object_get_string(kind)))
			break;
	if (kind_index == ARRAY_LEN(kind_names))
		return shim_error(err, err_size, "rootfs record: unknown kind \"%s\"",
				 json_object_get_string(kind));
	if (disk_set_from_json(disk_array, disks, msg, sizeof(msg)) < 0)
		return shim_error(err, err_size, "rootfs record: %s", msg);
	first_disk = json_object_get_int64(first);
	disk_count = json_object_get_int64(count);
	if (first_disk < 0 || disk_count < 0 || (uint64_t)first_disk > disks->count ||
	    (uint64_t)disk_count > disks->count - (uint64_t)first_disk) {
		shim_error(err, err_size, "rootfs record: disks %" PRId64 "+%" PRId64
			  " are not in its %zu disks", first_disk, disk_count, disks->count);
		disk_set_free(disks);
		return -1;
	}
	plan = malloc(sizeof(*plan));
	rc = plan ? mount_plan_parse(json_object_get_string(plan_text),
				     (size_t)json_object_get_string_len(plan_text), plan, msg,
				     sizeof(msg))
		  : shim_error(msg, sizeof(msg), "out of memory");
	if (rc == 0)
		mount_plan_free(plan);
	free(plan);
	layout->plan = rc == 0 ? strdup(json_object_get_string(plan_text)) : NULL;
	if (!layout->plan) {
		disk_set_free(disks);
		return shim_error(err, err_size, "rootfs record: plan: %s",
				 rc < 0 ? msg : "out of memory");
	}
	layout->kind = (enum rootfs_kind)kind_index;
	layout->read_only = json_object_get_boolean(read_only);
	layout->first_disk = (size_t)first_disk;
	layout->disk_count = (size_t)disk_count;
	return 0;
}
