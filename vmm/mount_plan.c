/*
 * mount_plan.c - parses, resolves and executes a mount plan. The format
 * and its rules are in vmm/mount_plan.h. The plan comes from outside the
 * guest, so the parser bounds every length and count, and everything the
 * executor would reject is rejected at parse time already, with the line.
 */
#include "vmm/mount_plan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define MKDIR_OPTION "X-containerd.mkdir."
#define MKDIR_PATH_OPTION "X-containerd.mkdir.path="
#define CONTAINERD_OPTION "X-containerd."
#define DEFAULT_MKDIR_MODE 0700
#define TARGET_MODE 0755
#define MAX_MODE 07777
/* (uid_t)-1 means "unchanged" to chown(2), so it is no owner. */
#define MAX_ID 4294967294UL
/* Mount indexes are below MOUNT_PLAN_MAX_MOUNTS: three digits suffice. */
#define MAX_INDEX_DIGITS 3
#define MESSAGE_SIZE 512

/* Flags a bind mount only takes on through a remount. */
#define BIND_REMOUNT_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | \
			    MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME)
#define ATIME_FLAGS (MS_NOATIME | MS_RELATIME | MS_STRICTATIME)

const struct mount_plan_ops mount_plan_system_ops = {
	.mkdir = mkdir,
	.chmod = chmod,
	.chown = chown,
	.mount = mount,
	.umount2 = umount2,
};

static const char *const fs_names[] = {
	[MOUNT_PLAN_EROFS] = "erofs",
	[MOUNT_PLAN_EXT4] = "ext4",
	[MOUNT_PLAN_TMPFS] = "tmpfs",
	[MOUNT_PLAN_BIND] = "bind",
	[MOUNT_PLAN_OVERLAY] = "overlay",
};

struct flag_option {
	const char *name;
	unsigned long set, clear;
};

/* As mount(8) reads them; a later option overrides an earlier one. */
static const struct flag_option flag_options[] = {
	{ "defaults", 0, 0 },
	{ "ro", MS_RDONLY, 0 },
	{ "rw", 0, MS_RDONLY },
	{ "nosuid", MS_NOSUID, 0 },
	{ "suid", 0, MS_NOSUID },
	{ "nodev", MS_NODEV, 0 },
	{ "dev", 0, MS_NODEV },
	{ "noexec", MS_NOEXEC, 0 },
	{ "exec", 0, MS_NOEXEC },
	{ "sync", MS_SYNCHRONOUS, 0 },
	{ "async", 0, MS_SYNCHRONOUS },
	{ "dirsync", MS_DIRSYNC, 0 },
	{ "noatime", MS_NOATIME, ATIME_FLAGS },
	{ "atime", 0, MS_NOATIME },
	{ "nodiratime", MS_NODIRATIME, 0 },
	{ "diratime", 0, MS_NODIRATIME },
	{ "relatime", MS_RELATIME, ATIME_FLAGS },
	{ "norelatime", 0, MS_RELATIME },
	{ "strictatime", MS_STRICTATIME, ATIME_FLAGS },
	{ "lazytime", MS_LAZYTIME, 0 },
	{ "nolazytime", 0, MS_LAZYTIME },
	{ "bind", MS_BIND, 0 },
	{ "rbind", MS_BIND | MS_REC, 0 },
};

static int set_error(char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_error(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static bool is_name(const char *s, size_t max_len)
{
	size_t len = strlen(s);

	if (len == 0 || len > max_len || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789._-") == len;
}

/* Returns what is wrong with @path as a plan path, or NULL. */
static const char *path_problem(const char *path)
{
	const char *component = path + 1;

	if (path[0] != '/')
		return "is not absolute";
	if (strlen(path) >= PATH_MAX)
		return "is too long";
	if (!strcmp(path, "/"))
		return NULL;
	for (;;) {
		size_t len = strcspn(component, "/");

		if (len == 0)
			return "has an empty component";
		if ((len == 1 && component[0] == '.') ||
		    (len == 2 && component[0] == '.' && component[1] == '.'))
			return "has a \".\" or \"..\" component";
		if (!component[len])
			return NULL;
		component += len + 1;
	}
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes VALUE @raw into @out (@size bytes); returns NULL or the problem. */
static const char *decode_value(const char *raw, char *out, size_t size)
{
	size_t len = 0;

	for (const char *p = raw; *p; p++) {
		char c = *p;

		if (c == '%') {
			int high = hex_value(p[1]), low = high < 0 ? -1 : hex_value(p[2]);

			if (low < 0)
				return "'%' not followed by two hex digits";
			c = (char)(high << 4 | low);
			if (!c)
				return "%00 (NUL) is not allowed";
			p += 2;
		}
		if (len + 1 >= size)
			return "is too long";
		out[len++] = c;
	}
	out[len] = '\0';
	return NULL;
}

int mount_plan_encode(const char *value, bool in_option, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = 0;

	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		bool escape = *p < 0x21 || *p > 0x7e || *p == '%' ||
			      (in_option && *p == ',');

		if (len + (escape ? 3 : 1) >= size)
			return -ENOSPC;
		if (escape) {
			out[len++] = '%';
			out[len++] = hex[*p >> 4];
			out[len++] = hex[*p & 0xf];
		} else {
			out[len++] = (char)*p;
		}
	}
	if (len >= size)
		return -ENOSPC;
	out[len] = '\0';
	return (int)len;
}

struct buffer {
	char *data;
	size_t len, size;
};

static bool append(struct buffer *buf, const char *s, size_t len)
{
	if (len >= buf->size - buf->len)
		return false;
	memcpy(buf->data + buf->len, s, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return true;
}

/*
 * Reads the decimal mount index at *@p into @value, after at least one
 * space, and checks it names a mount before @index.
 */
static int read_index(const char **p, size_t index, unsigned int *value,
		      char *msg, size_t msg_size)
{
	const char *digits = *p;
	size_t n;

	digits += strspn(digits, " ");
	n = strspn(digits, "0123456789");
	if (digits == *p || n == 0)
		return set_error(msg, msg_size, "malformed template: expected a mount index");
	if (n > MAX_INDEX_DIGITS)
		return set_error(msg, msg_size, "template index %.*s is too large",
				 (int)n, digits);
	*value = 0;
	for (size_t i = 0; i < n; i++)
		*value = *value * 10 + (unsigned int)(digits[i] - '0');
	if (*value >= index)
		return set_error(msg, msg_size,
				 "template refers to mount %u, which is not an earlier mount than %zu",
				 *value, index);
	*p = digits + n;
	return 0;
}

/* Expands the template at @p ("{{...") into @out; moves @p past it. */
static int expand_template(const struct mount_plan *plan, size_t index, const char **p,
			   struct buffer *out, char *msg, size_t msg_size)
{
	const char *s = *p + 2, *name;
	bool ok = true, is_overlay, is_mount, is_source;
	unsigned int a, b = 0;
	size_t name_len;

	s += strspn(s, " ");
	name = s;
	name_len = strspn(s, "abcdefghijklmnopqrstuvwxyz");
	s += name_len;
	is_overlay = name_len == 7 && !strncmp(name, "overlay", 7);
	is_mount = (name_len == 5 && !strncmp(name, "mount", 5)) ||
		   (name_len == 6 && !strncmp(name, "target", 6));
	is_source = name_len == 6 && !strncmp(name, "source", 6);
	if (!is_overlay && !is_mount && !is_source)
		return set_error(msg, msg_size, "unknown template function \"%.*s\"",
				 (int)name_len, name);
	if (read_index(&s, index, &a, msg, msg_size) < 0 ||
	    (is_overlay && read_index(&s, index, &b, msg, msg_size) < 0))
		return -1;
	if (is_overlay) {
		for (unsigned int i = a;; i = a <= b ? i + 1 : i - 1) {
			const char *target = plan->mounts[i].target;

			ok = ok && (i == a || append(out, ":", 1)) &&
			     append(out, target, strlen(target));
			if (i == b)
				break;
		}
	} else if (is_mount) {
		ok = append(out, plan->mounts[a].target, strlen(plan->mounts[a].target));
	} else {
		if (!strncmp(plan->mounts[a].source, "serial:", 7))
			return set_error(msg, msg_size,
					 "{{ source %u }}: the source of mount %u is a disk serial, not a path",
					 a, a);
		ok = append(out, plan->mounts[a].source, strlen(plan->mounts[a].source));
	}
	s += strspn(s, " ");
	if (strncmp(s, "}}", 2))
		return set_error(msg, msg_size, "malformed template: expected \"}}\"");
	if (!ok)
		return set_error(msg, msg_size, "expands to more than %d bytes",
				 MOUNT_PLAN_MAX_VALUE - 1);
	*p = s + 2;
	return 0;
}

/*
 * Expands the templates of @in, a value of mount @index of @plan, into
 * @out (MOUNT_PLAN_MAX_VALUE bytes).
 */
static int expand(const struct mount_plan *plan, size_t index, const char *in,
		  char *out, char *msg, size_t msg_size)
{
	struct buffer buf = { out, 0, MOUNT_PLAN_MAX_VALUE };
	const char *p = in;

	out[0] = '\0';
	while (*p) {
		size_t plain = 0;

		while (p[plain] && strncmp(p + plain, "{{", 2) && strncmp(p + plain, "}}", 2))
			plain++;
		if (!append(&buf, p, plain))
			return set_error(msg, msg_size, "expands to more than %d bytes",
					 MOUNT_PLAN_MAX_VALUE - 1);
		p += plain;
		if (!strncmp(p, "}}", 2))
			return set_error(msg, msg_size, "malformed template: \"}}\" without \"{{\"");
		if (*p && expand_template(plan, index, &p, &buf, msg, msg_size) < 0)
			return -1;
	}
	return 0;
}

/* Reads decimal @s (digits only) into @value, at most @max. */
static bool parse_decimal(const char *s, unsigned long max, unsigned long *value)
{
	size_t n = strspn(s, "0123456789");

	if (n == 0 || s[n])
		return false;
	*value = 0;
	for (size_t i = 0; i < n; i++) {
		if (*value > (max - (unsigned long)(s[i] - '0')) / 10)
			return false;
		*value = *value * 10 + (unsigned long)(s[i] - '0');
	}
	return true;
}

/* Reads octal @s (digits only) into @mode, at most MAX_MODE. */
static bool parse_mode(const char *s, unsigned long *mode)
{
	size_t n = strspn(s, "01234567");

	if (n == 0 || s[n])
		return false;
	*mode = 0;
	for (size_t i = 0; i < n; i++) {
		*mode = *mode * 8 + (unsigned long)(s[i] - '0');
		if (*mode > MAX_MODE)
			return false;
	}
	return true;
}

static bool inside_earlier_mount(const struct mount_plan *plan, size_t index,
				 const char *path)
{
	for (size_t i = 0; i < index; i++) {
		const char *target = plan->mounts[i].target;
		size_t len = strlen(target);

		if (!strncmp(path, target, len) &&
		    (path[len] == '\0' || path[len] == '/' || !strcmp(target, "/")))
			return true;
	}
	return false;
}

/* Parses "PATH[:MODE[:UID:GID]]" (@value, modified) into @dir. */
static int parse_mkdir(const struct mount_plan *plan, size_t index, char *value,
		       struct mount_plan_mkdir *dir, char *msg, size_t msg_size)
{
	char *fields[4] = { value };
	unsigned long mode = DEFAULT_MKDIR_MODE, uid, gid;
	size_t count = 1;
	const char *problem;

	for (char *colon = strchr(value, ':'); colon; colon = strchr(colon + 1, ':')) {
		if (count == 4)
			return set_error(msg, msg_size, "mkdir \"%s\": more than PATH:MODE:UID:GID",
					 value);
		*colon = '\0';
		fields[count++] = colon + 1;
	}
	if (count == 3)
		return set_error(msg, msg_size, "mkdir \"%s\": a UID needs a GID", value);
	problem = path_problem(fields[0]);
	if (problem)
		return set_error(msg, msg_size, "mkdir path \"%s\" %s", fields[0], problem);
	if (!inside_earlier_mount(plan, index, fields[0]))
		return set_error(msg, msg_size,
				 "mkdir path \"%s\" is not inside the target of an earlier mount",
				 fields[0]);
	if (count >= 2 && !parse_mode(fields[1], &mode))
		return set_error(msg, msg_size, "mkdir \"%s\": mode \"%s\" is not octal 0-7777",
				 fields[0], fields[1]);
	if (count == 4 && (!parse_decimal(fields[2], MAX_ID, &uid) ||
			   !parse_decimal(fields[3], MAX_ID, &gid)))
		return set_error(msg, msg_size, "mkdir \"%s\": bad UID:GID \"%s:%s\"",
				 fields[0], fields[2], fields[3]);
	dir->path = strdup(fields[0]);
	if (!dir->path)
		return set_error(msg, msg_size, "out of memory");
	dir->mode = (mode_t)mode;
	dir->set_owner = count == 4;
	dir->uid = count == 4 ? (uid_t)uid : 0;
	dir->gid = count == 4 ? (gid_t)gid : 0;
	return 0;
}

void mount_plan_resolved_free(struct mount_plan_resolved *resolved)
{
	for (size_t i = 0; i < resolved->option_count; i++)
		free(resolved->options[i]);
	for (size_t i = 0; i < resolved->mkdir_count; i++)
		free(resolved->mkdirs[i].path);
	resolved->option_count = 0;
	resolved->mkdir_count = 0;
}

/* Resolves @option of mount @index into @out; @value is scratch space. */
static int resolve_option(const struct mount_plan *plan, size_t index, const char *option,
			  struct mount_plan_resolved *out, char *value, char *msg, size_t msg_size)
{
	const struct mount_plan_mount *m = &plan->mounts[index];

	if (m->format) {
		if (expand(plan, index, option, value, msg, msg_size) < 0)
			return -1;
	} else {
		/* The parser bounded every option to MOUNT_PLAN_MAX_VALUE. */
		strcpy(value, option);
	}
	if (!strncmp(value, MKDIR_OPTION, strlen(MKDIR_OPTION))) {
		if (!m->mkdir)
			return set_error(msg, msg_size, "option \"%s\" needs a mkdir/ type", value);
		if (strncmp(value, MKDIR_PATH_OPTION, strlen(MKDIR_PATH_OPTION)))
			return set_error(msg, msg_size, "unknown mkdir option \"%s\"", value);
		if (parse_mkdir(plan, index, value + strlen(MKDIR_PATH_OPTION),
				&out->mkdirs[out->mkdir_count], msg, msg_size) < 0)
			return -1;
		out->mkdir_count++;
		return 0;
	}
	/* Directions to containerd's own mount manager, or the host's loop device. */
	if (!strncmp(value, CONTAINERD_OPTION, strlen(CONTAINERD_OPTION)) || !strcmp(value, "loop"))
		return 0;
	out->options[out->option_count] = strdup(value);
	if (!out->options[out->option_count])
		return set_error(msg, msg_size, "out of memory");
	out->option_count++;
	return 0;
}

int mount_plan_resolve(const struct mount_plan *plan, size_t index,
		       struct mount_plan_resolved *out, char *err, size_t err_size)
{
	const struct mount_plan_mount *m;
	char msg[MESSAGE_SIZE];
	char *value;

	memset(out, 0, sizeof(*out));
	if (index >= plan->mount_count)
		return set_error(err, err_size, "no mount %zu in a plan of %zu", index,
				 plan->mount_count);
	m = &plan->mounts[index];
	out->mount = m;
	value = malloc(MOUNT_PLAN_MAX_VALUE);
	if (!value)
		return set_error(err, err_size, "line %u: out of memory", m->line);
	for (size_t i = 0; i < m->option_count; i++) {
		if (resolve_option(plan, index, m->options[i], out, value, msg, sizeof(msg)) < 0) {
			free(value);
			mount_plan_resolved_free(out);
			return set_error(err, err_size, "line %u: %s", m->line, msg);
		}
	}
	free(value);
	return 0;
}

/* Checks the paths of overlay option @option (NAME=VALUE). */
static int check_overlay_paths(const char *option, char *msg, size_t msg_size)
{
	static const char *const path_options[] = { "upperdir=", "workdir=", "lowerdir=" };
	char path[MOUNT_PLAN_MAX_VALUE];

	for (size_t i = 0; i < sizeof(path_options) / sizeof(path_options[0]); i++) {
		size_t prefix = strlen(path_options[i]);
		bool is_list = i == 2;
		const char *value = option + prefix, *problem;

		if (strncmp(option, path_options[i], prefix))
			continue;
		for (;;) {
			size_t len = is_list ? strcspn(value, ":") : strlen(value);

			memcpy(path, value, len);
			path[len] = '\0';
			problem = path_problem(path);
			if (problem)
				return set_error(msg, msg_size, "%.*s path \"%s\" %s",
						 (int)prefix - 1, option, path, problem);
			if (!value[len])
				return 0;
			value += len + 1;
		}
	}
	return 0;
}

/* The flags and data string of @resolved; no source yet. */
static int build_flags_and_data(const struct mount_plan_resolved *resolved,
				struct mount_plan_syscall *out, char *msg, size_t msg_size)
{
	const struct mount_plan_mount *m = resolved->mount;
	struct buffer data = { out->data, 0, sizeof(out->data) };
	bool bind = m->fs == MOUNT_PLAN_BIND;
	unsigned long flags = bind ? MS_BIND : 0;

	out->data[0] = '\0';
	for (size_t i = 0; i < resolved->option_count; i++) {
		const char *option = resolved->options[i];
		const struct flag_option *flag = NULL;

		for (size_t j = 0; j < sizeof(flag_options) / sizeof(flag_options[0]); j++)
			if (!strcmp(option, flag_options[j].name))
				flag = &flag_options[j];
		if (flag && (flag->set & MS_BIND) && !bind)
			return set_error(msg, msg_size, "option \"%s\" is for bind mounts only",
					 option);
		if (flag) {
			flags = (flags & ~flag->clear) | flag->set;
			continue;
		}
		if (bind)
			return set_error(msg, msg_size, "bind mounts take no option \"%s\"", option);
		if (strchr(option, ','))
			return set_error(msg, msg_size,
					 "option \"%s\" holds a ',', which the kernel would split",
					 option);
		if (m->fs == MOUNT_PLAN_OVERLAY && check_overlay_paths(option, msg, msg_size) < 0)
			return -1;
		if ((data.len && !append(&data, ",", 1)) || !append(&data, option, strlen(option)))
			return set_error(msg, msg_size, "mount data longer than %d bytes",
					 MOUNT_PLAN_MAX_DATA - 1);
	}
	if (m->fs == MOUNT_PLAN_EROFS)
		flags |= MS_RDONLY;
	out->flags = flags;
	out->remount_flags = 0;
	/* A bind mount ignores every other flag: they need a remount. */
	if (bind) {
		out->flags = flags & (MS_BIND | MS_REC);
		if (flags & BIND_REMOUNT_FLAGS)
			out->remount_flags = MS_REMOUNT | MS_BIND | (flags & BIND_REMOUNT_FLAGS);
	}
	out->fstype = bind ? NULL : fs_names[m->fs];
	out->target = m->target;
	return 0;
}

int mount_plan_syscall_args(const struct mount_plan_resolved *resolved,
			    mount_plan_serial_fn resolve_serial, void *ctx,
			    struct mount_plan_syscall *out, char *err, size_t err_size)
{
	const struct mount_plan_mount *m = resolved->mount;
	char msg[MESSAGE_SIZE];

	if (build_flags_and_data(resolved, out, msg, sizeof(msg)) < 0)
		return set_error(err, err_size, "line %u: %s", m->line, msg);
	if (!strncmp(m->source, "serial:", 7)) {
		int rc = resolve_serial(ctx, m->source + 7, out->source, sizeof(out->source));

		if (rc < 0)
			return set_error(err, err_size, "disk %s: %s", m->source, strerror(-rc));
	} else {
		/* The parser bounded every source to MOUNT_PLAN_MAX_VALUE. */
		strcpy(out->source, m->source);
	}
	return 0;
}

static void free_mount(struct mount_plan_mount *m)
{
	free(m->source);
	free(m->target);
	for (size_t i = 0; i < m->option_count; i++)
		free(m->options[i]);
	memset(m, 0, sizeof(*m));
}

void mount_plan_free(struct mount_plan *plan)
{
	for (size_t i = 0; i < plan->mount_count; i++)
		free_mount(&plan->mounts[i]);
	plan->mount_count = 0;
	plan->root_index = -1;
}

/*
 * Cuts the next word off *@cursor, in place: words end at blanks, except
 * between "{{" and "}}". Returns 1 and the word in *@word, 0 at the end of
 * the line, or -1 for an unterminated template.
 */
static int next_word(char **cursor, char **word)
{
	char *p = *cursor + strspn(*cursor, " \t");
	bool in_template = false;

	if (!*p)
		return 0;
	*word = p;
	while (*p && (in_template || (*p != ' ' && *p != '\t'))) {
		if (!strncmp(p, in_template ? "}}" : "{{", 2)) {
			in_template = !in_template;
			p++;
		}
		p++;
	}
	if (in_template)
		return -1;
	if (*p)
		*p++ = '\0';
	*cursor = p;
	return 1;
}

struct mount_fields {
	char *type, *source, *target, *name, *options;
};

static int read_fields(char *cursor, struct mount_fields *fields, char *msg, size_t msg_size)
{
	static const char *const keys[] = { "type", "source", "target", "name", "options" };
	char **slots[] = { &fields->type, &fields->source, &fields->target, &fields->name,
			   &fields->options };
	char *word;
	int rc;

	memset(fields, 0, sizeof(*fields));
	while ((rc = next_word(&cursor, &word)) > 0) {
		char *equals = strchr(word, '=');
		size_t key = 0;

		if (!equals)
			return set_error(msg, msg_size, "\"%.64s\" is not FIELD=VALUE", word);
		*equals = '\0';
		while (key < sizeof(keys) / sizeof(keys[0]) && strcmp(word, keys[key]))
			key++;
		if (key == sizeof(keys) / sizeof(keys[0]))
			return set_error(msg, msg_size, "unknown field \"%.64s\"", word);
		if (*slots[key])
			return set_error(msg, msg_size, "field %s given twice", word);
		*slots[key] = equals + 1;
	}
	if (rc < 0)
		return set_error(msg, msg_size, "unterminated \"{{\"");
	if (!fields->type)
		return set_error(msg, msg_size, "missing field type");
	return 0;
}

static int parse_type(const char *type, struct mount_plan_mount *m, char *msg, size_t msg_size)
{
	const char *fstype = type;
	size_t i;

	if (!strncmp(fstype, "format/", 7)) {
		m->format = true;
		fstype += 7;
	}
	if (!strncmp(fstype, "mkdir/", 6)) {
		m->mkdir = true;
		fstype += 6;
	}
	for (i = 0; i < sizeof(fs_names) / sizeof(fs_names[0]); i++)
		if (!strcmp(fstype, fs_names[i]))
			break;
	if (i == sizeof(fs_names) / sizeof(fs_names[0]))
		return set_error(msg, msg_size,
				 "unknown type \"%.64s\": expected [format/][mkdir/]erofs, ext4, tmpfs, bind or overlay",
				 type);
	m->fs = (enum mount_plan_fs)i;
	/* fstype is one of fs_names, so the whole type fits. */
	snprintf(m->type, sizeof(m->type), "%s", type);
	return 0;
}

/*
 * Decodes field @what (@raw) of mount @m, the next mount of @plan, and
 * expands its templates into @out (MOUNT_PLAN_MAX_VALUE bytes).
 */
static int read_value(const struct mount_plan *plan, const struct mount_plan_mount *m,
		      const char *what, const char *raw, char *out, char *msg, size_t msg_size)
{
	char decoded[MOUNT_PLAN_MAX_VALUE], why[MESSAGE_SIZE];
	const char *problem = decode_value(raw, decoded, sizeof(decoded));

	if (problem)
		return set_error(msg, msg_size, "%s: %s", what, problem);
	if (!m->format) {
		if (strstr(decoded, "{{"))
			return set_error(msg, msg_size, "%s: templates need a format/ type", what);
		strcpy(out, decoded);
		return 0;
	}
	if (expand(plan, plan->mount_count, decoded, out, why, sizeof(why)) < 0)
		return set_error(msg, msg_size, "%s: %s", what, why);
	return 0;
}

static int read_target(const struct mount_plan *plan, const struct mount_plan_mount *m,
		       const struct mount_fields *fields, char *target, char *msg, size_t msg_size)
{
	const char *problem;

	if (fields->target && fields->name)
		return set_error(msg, msg_size, "give name or target, not both");
	if (fields->name) {
		if (!is_name(fields->name, NAME_MAX))
			return set_error(msg, msg_size, "name \"%.64s\" is not a plain name of [A-Za-z0-9._-]",
					 fields->name);
		snprintf(target, MOUNT_PLAN_MAX_VALUE, MOUNT_PLAN_DEFAULT_DIR "/%s", fields->name);
	} else if (fields->target) {
		if (read_value(plan, m, "target", fields->target, target, msg, msg_size) < 0)
			return -1;
	} else {
		snprintf(target, MOUNT_PLAN_MAX_VALUE, MOUNT_PLAN_DEFAULT_DIR "/%zu",
			 plan->mount_count);
	}
	problem = path_problem(target);
	if (problem)
		return set_error(msg, msg_size, "target \"%s\" %s", target, problem);
	if (!strcmp(target, "/"))
		return set_error(msg, msg_size, "target is \"/\"");
	for (size_t i = 0; i < plan->mount_count; i++)
		if (!strcmp(plan->mounts[i].target, target))
			return set_error(msg, msg_size, "target \"%s\" is also the target of mount %zu",
					 target, i);
	return 0;
}

static int read_source(const struct mount_plan *plan, const struct mount_plan_mount *m,
		       const char *raw, char *source, char *msg, size_t msg_size)
{
	const char *problem;

	if (!raw) {
		if (m->fs != MOUNT_PLAN_TMPFS && m->fs != MOUNT_PLAN_OVERLAY)
			return set_error(msg, msg_size, "missing field source");
		strcpy(source, "none");
		return 0;
	}
	if (read_value(plan, m, "source", raw, source, msg, msg_size) < 0)
		return -1;
	switch (m->fs) {
	case MOUNT_PLAN_TMPFS:
	case MOUNT_PLAN_OVERLAY:
		if (!is_name(source, NAME_MAX))
			return set_error(msg, msg_size,
					 "source \"%s\" of a %s mount is not \"none\" or a label of [A-Za-z0-9._-]",
					 source, fs_names[m->fs]);
		return 0;
	case MOUNT_PLAN_EROFS:
	case MOUNT_PLAN_EXT4:
		if (!strncmp(source, "serial:", 7)) {
			if (!is_name(source + 7, MOUNT_PLAN_MAX_SERIAL))
				return set_error(msg, msg_size,
						 "disk serial \"%s\" is not 1-%d bytes of [A-Za-z0-9._-]",
						 source + 7, MOUNT_PLAN_MAX_SERIAL);
			return 0;
		}
		break;
	case MOUNT_PLAN_BIND:
		break;
	}
	problem = path_problem(source);
	if (problem)
		return set_error(msg, msg_size, "source \"%s\" %s", source, problem);
	return 0;
}

static int read_options(struct mount_plan_mount *m, char *list, char *msg, size_t msg_size)
{
	char decoded[MOUNT_PLAN_MAX_VALUE];

	for (char *option = list, *end; option; option = end) {
		const char *problem;

		end = strchr(option, ',');
		if (end)
			*end++ = '\0';
		if (!*option)
			return set_error(msg, msg_size, "empty option");
		if (m->option_count == MOUNT_PLAN_MAX_OPTIONS)
			return set_error(msg, msg_size, "more than %d options",
					 MOUNT_PLAN_MAX_OPTIONS);
		problem = decode_value(option, decoded, sizeof(decoded));
		if (problem)
			return set_error(msg, msg_size, "option \"%.64s\": %s", option, problem);
		if (!m->format && strstr(decoded, "{{"))
			return set_error(msg, msg_size, "option \"%.64s\": templates need a format/ type",
					 decoded);
		m->options[m->option_count] = strdup(decoded);
		if (!m->options[m->option_count])
			return set_error(msg, msg_size, "out of memory");
		m->option_count++;
	}
	return 0;
}

/* Checks what resolving and mounting @plan's last mount would reject. */
static int check_last_mount(const struct mount_plan *plan, char *err, size_t err_size)
{
	struct mount_plan_resolved resolved;
	struct mount_plan_syscall *args;
	char msg[MESSAGE_SIZE];
	int rc;

	if (mount_plan_resolve(plan, plan->mount_count - 1, &resolved, err, err_size) < 0)
		return -1;
	args = malloc(sizeof(*args));
	if (!args)
		rc = set_error(msg, sizeof(msg), "out of memory");
	else
		rc = build_flags_and_data(&resolved, args, msg, sizeof(msg));
	free(args);
	mount_plan_resolved_free(&resolved);
	if (rc < 0)
		return set_error(err, err_size, "line %u: %s",
				 plan->mounts[plan->mount_count - 1].line, msg);
	return 0;
}

static int parse_mount(struct mount_plan *plan, char *cursor, unsigned int line,
		       char *err, size_t err_size)
{
	struct mount_plan_mount *m = &plan->mounts[plan->mount_count];
	char msg[MESSAGE_SIZE], *value;
	struct mount_fields fields;

	if (plan->mount_count == MOUNT_PLAN_MAX_MOUNTS)
		return set_error(err, err_size, "line %u: more than %d mounts", line,
				 MOUNT_PLAN_MAX_MOUNTS);
	memset(m, 0, sizeof(*m));
	m->line = line;
	value = malloc(MOUNT_PLAN_MAX_VALUE);
	if (!value)
		return set_error(err, err_size, "line %u: out of memory", line);
	if (read_fields(cursor, &fields, msg, sizeof(msg)) < 0 ||
	    parse_type(fields.type, m, msg, sizeof(msg)) < 0 ||
	    read_target(plan, m, &fields, value, msg, sizeof(msg)) < 0)
		goto fail;
	m->target = strdup(value);
	if (!m->target)
		goto out_of_memory;
	if (read_source(plan, m, fields.source, value, msg, sizeof(msg)) < 0)
		goto fail;
	m->source = strdup(value);
	if (!m->source)
		goto out_of_memory;
	if (fields.options && read_options(m, fields.options, msg, sizeof(msg)) < 0)
		goto fail;
	free(value);
	plan->mount_count++;
	if (check_last_mount(plan, err, err_size) < 0) {
		plan->mount_count--;
		free_mount(m);
		return -1;
	}
	return 0;
out_of_memory:
	snprintf(msg, sizeof(msg), "out of memory");
fail:
	free(value);
	free_mount(m);
	return set_error(err, err_size, "line %u: %s", line, msg);
}

static int parse_root(char *cursor, unsigned int line, char **root,
		      char *err, size_t err_size)
{
	char decoded[MOUNT_PLAN_MAX_VALUE], *path, *extra;
	const char *problem;

	if (*root)
		return set_error(err, err_size, "line %u: a second root line", line);
	if (next_word(&cursor, &path) <= 0)
		return set_error(err, err_size, "line %u: root needs a PATH", line);
	if (next_word(&cursor, &extra) != 0)
		return set_error(err, err_size, "line %u: root takes one PATH", line);
	problem = decode_value(path, decoded, sizeof(decoded));
	if (!problem)
		problem = path_problem(decoded);
	if (problem)
		return set_error(err, err_size, "line %u: root \"%.64s\" %s", line, path, problem);
	*root = strdup(decoded);
	if (!*root)
		return set_error(err, err_size, "line %u: out of memory", line);
	return 0;
}

/* Parses @line (NUL-terminated, number @number) into @plan or @root. */
static int parse_line(struct mount_plan *plan, char *line, unsigned int number,
		      char **root, unsigned int *root_line, char *err, size_t err_size)
{
	char *cursor = line + strspn(line, " \t"), *directive;

	if (!*cursor || *cursor == '#')
		return 0;
	for (const char *p = cursor; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c != ' ' && c != '\t' && (c < 0x21 || c > 0x7e))
			return set_error(err, err_size,
					 "line %u: byte 0x%02x at column %zu is not printable ASCII (write it as %%XX)",
					 number, c, (size_t)(p - line) + 1);
	}
	if (next_word(&cursor, &directive) < 0)
		return set_error(err, err_size, "line %u: unterminated \"{{\"", number);
	if (!strcmp(directive, "mount"))
		return parse_mount(plan, cursor, number, err, err_size);
	if (!strcmp(directive, "root")) {
		*root_line = number;
		return parse_root(cursor, number, root, err, err_size);
	}
	return set_error(err, err_size, "line %u: unknown directive \"%.64s\"", number, directive);
}

int mount_plan_parse(const char *text, size_t len, struct mount_plan *plan,
		     char *err, size_t err_size)
{
	unsigned int number = 0, root_line = 0;
	char *line, *root = NULL;
	size_t pos = 0;

	memset(plan, 0, sizeof(*plan));
	plan->root_index = -1;
	if (len > MOUNT_PLAN_MAX_TEXT)
		return set_error(err, err_size, "the plan is %zu bytes, more than %d", len,
				 MOUNT_PLAN_MAX_TEXT);
	line = malloc(MOUNT_PLAN_MAX_LINE + 1);
	if (!line)
		return set_error(err, err_size, "out of memory");
	while (pos < len) {
		const char *start = text + pos, *newline = memchr(start, '\n', len - pos);
		size_t line_len = newline ? (size_t)(newline - start) : len - pos;

		number++;
		pos += line_len + (newline ? 1 : 0);
		if (line_len > MOUNT_PLAN_MAX_LINE) {
			set_error(err, err_size, "line %u: longer than %d bytes", number,
				  MOUNT_PLAN_MAX_LINE);
			goto fail;
		}
		if (memchr(start, '\0', line_len)) {
			set_error(err, err_size, "line %u: NUL byte", number);
			goto fail;
		}
		memcpy(line, start, line_len);
		line[line_len] = '\0';
		if (parse_line(plan, line, number, &root, &root_line, err, err_size) < 0)
			goto fail;
	}
	if (root) {
		for (size_t i = 0; i < plan->mount_count; i++)
			if (!strcmp(plan->mounts[i].target, root))
				plan->root_index = (int)i;
		if (plan->root_index < 0) {
			set_error(err, err_size, "line %u: root \"%s\" is not the target of a mount",
				  root_line, root);
			goto fail;
		}
	}
	free(root);
	free(line);
	return 0;
fail:
	free(root);
	free(line);
	mount_plan_free(plan);
	return -1;
}

static void log_step(const struct mount_plan_env *env, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void log_step(const struct mount_plan_env *env, const char *fmt, ...)
{
	char line[MESSAGE_SIZE * 2];
	va_list ap;

	if (!env->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	env->log(env->ctx, line);
}

/*
 * mkdir -p @path: missing parents get TARGET_MODE, @path itself @mode.
 * Sets *@created when @path did not exist. Returns 0, or -1 with errno.
 */
static int make_directories(const struct mount_plan_env *env, const char *path,
			    mode_t mode, bool *created)
{
	char partial[PATH_MAX];
	size_t len = strlen(path);

	*created = false;
	/* Plan paths are shorter than PATH_MAX and start with '/'. */
	memcpy(partial, path, len + 1);
	for (size_t end = 1; end <= len; end++) {
		bool last = end == len;

		if (!last && partial[end] != '/')
			continue;
		partial[end] = '\0';
		if (env->ops->mkdir(partial, last ? mode : TARGET_MODE) == 0)
			*created = last;
		else if (errno != EEXIST)
			return -1;
		partial[end] = path[end];
	}
	return 0;
}

/* Runs the mkdir directives of @resolved; on failure names the step in @step. */
static int run_mkdirs(const struct mount_plan_env *env, size_t index,
		      const struct mount_plan_resolved *resolved, char *step, size_t step_size)
{
	for (size_t i = 0; i < resolved->mkdir_count; i++) {
		const struct mount_plan_mkdir *dir = &resolved->mkdirs[i];
		bool created;

		log_step(env, "mount %zu: mkdir -p -m %04o %s", index, (unsigned int)dir->mode,
			 dir->path);
		snprintf(step, step_size, "mkdir %s", dir->path);
		if (make_directories(env, dir->path, dir->mode, &created) < 0)
			return -1;
		if (!created) {
			log_step(env, "mount %zu: %s exists; its mode and owner stay", index,
				 dir->path);
			continue;
		}
		/* Owner before mode: chown clears the set-user-ID and set-group-ID bits. */
		if (dir->set_owner) {
			log_step(env, "mount %zu: chown %lu:%lu %s", index,
				 (unsigned long)dir->uid, (unsigned long)dir->gid, dir->path);
			snprintf(step, step_size, "chown %s", dir->path);
			if (env->ops->chown(dir->path, dir->uid, dir->gid) < 0)
				return -1;
		}
		/* mkdir(2) applies the umask; the plan asks for this exact mode. */
		snprintf(step, step_size, "chmod %s", dir->path);
		if (env->ops->chmod(dir->path, dir->mode) < 0)
			return -1;
	}
	return 0;
}

/* Unmounts the first @count mounts of @plan, last first, logging failures. */
static void undo_mounts(const struct mount_plan *plan, const struct mount_plan_env *env,
			size_t count)
{
	while (count--) {
		const char *target = plan->mounts[count].target;

		log_step(env, "undo: umount %s", target);
		if (env->ops->umount2(target, 0) < 0)
			log_step(env, "undo: umount %s: %s", target, strerror(errno));
	}
}

/* Mounts mount @index; on failure, @err says why and *@mounted whether it stayed. */
static int execute_mount(const struct mount_plan *plan, const struct mount_plan_env *env,
			 size_t index, bool *mounted, char *err, size_t err_size)
{
	const struct mount_plan_mount *m = &plan->mounts[index];
	struct mount_plan_resolved resolved;
	struct mount_plan_syscall *args;
	char step[MESSAGE_SIZE], why[MESSAGE_SIZE];
	bool created;
	int rc = -1;

	*mounted = false;
	args = malloc(sizeof(*args));
	if (!args)
		return set_error(err, err_size, "mount %zu (%s at %s): out of memory", index,
				 m->type, m->target);
	if (mount_plan_resolve(plan, index, &resolved, why, sizeof(why)) < 0) {
		snprintf(step, sizeof(step), "resolve");
		goto out;
	}
	if (mount_plan_syscall_args(&resolved, env->resolve_serial, env->ctx, args,
				    why, sizeof(why)) < 0) {
		snprintf(step, sizeof(step), "source");
		goto out_resolved;
	}
	log_step(env, "mount %zu: mkdir -p %s", index, m->target);
	snprintf(step, sizeof(step), "mkdir %s", m->target);
	if (make_directories(env, m->target, TARGET_MODE, &created) < 0 ||
	    run_mkdirs(env, index, &resolved, step, sizeof(step)) < 0)
		goto out_errno;
	log_step(env, "mount %zu: mount -t %s %s %s flags 0x%lx data \"%s\"", index,
		 args->fstype ? args->fstype : "(bind)", args->source, args->target,
		 args->flags, args->data);
	snprintf(step, sizeof(step), "mount");
	if (env->ops->mount(args->source, args->target, args->fstype, args->flags,
			    args->data[0] ? args->data : NULL) < 0)
		goto out_errno;
	*mounted = true;
	if (args->remount_flags) {
		log_step(env, "mount %zu: remount %s flags 0x%lx", index, args->target,
			 args->remount_flags);
		snprintf(step, sizeof(step), "remount");
		if (env->ops->mount(NULL, args->target, NULL, args->remount_flags, NULL) < 0)
			goto out_errno;
	}
	rc = 0;
	goto out_resolved;
out_errno:
	snprintf(why, sizeof(why), "%s", strerror(errno));
out_resolved:
	mount_plan_resolved_free(&resolved);
out:
	free(args);
	if (rc < 0)
		set_error(err, err_size, "mount %zu (%s at %s): %s: %s", index, m->type,
			  m->target, step, why);
	return rc;
}

int mount_plan_execute(const struct mount_plan *plan, const struct mount_plan_env *env,
		       char *err, size_t err_size)
{
	char message[MESSAGE_SIZE * 2];

	for (size_t i = 0; i < plan->mount_count; i++) {
		bool mounted;

		if (execute_mount(plan, env, i, &mounted, message, sizeof(message)) < 0) {
			log_step(env, "%s", message);
			undo_mounts(plan, env, mounted ? i + 1 : i);
			return set_error(err, err_size, "%s", message);
		}
	}
	return 0;
}

int mount_plan_find_disk(void *sys_block, const char *serial, char *path, size_t size)
{
	const char *dir_path = sys_block;
	char found[NAME_MAX + 1] = "";
	struct dirent *entry;
	DIR *dir;
	int rc = 0;

	dir = opendir(dir_path);
	if (!dir)
		return -errno;
	while ((errno = 0, entry = readdir(dir))) {
		char file[PATH_MAX], content[MOUNT_PLAN_MAX_SERIAL + 2];
		ssize_t n;
		int fd;

		if (entry->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "%s/%s/serial", dir_path, entry->d_name);
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* not a virtio disk */
		n = read(fd, content, sizeof(content) - 1);
		close(fd);
		if (n <= 0)
			continue;
		content[n] = '\0';
		content[strcspn(content, "\n")] = '\0';
		if (strcmp(content, serial))
			continue;
		if (found[0]) {
			rc = -EEXIST; /* two disks with one serial: neither is safe */
			break;
		}
		snprintf(found, sizeof(found), "%s", entry->d_name);
	}
	if (!rc && errno)
		rc = -errno;
	closedir(dir);
	if (rc)
		return rc;
	if (!found[0])
		return -ENODEV;
	if ((size_t)snprintf(path, size, "/dev/%s", found) >= size)
		return -ENAMETOOLONG;
	return 0;
}
