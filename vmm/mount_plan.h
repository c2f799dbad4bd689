/*
 * mount_plan.h - the mount plan: which filesystems guest-init mounts, and
 * how, to assemble a container's root the way containerd describes it
 * (its mount lists, and the EROFS snapshotter's "format/mkdir/overlay").
 *
 * The plan is text, independent of how it reaches the guest (a config
 * disk from vmm-run today, vsock from a containerd shim later). Example:
 *
 *   # layers first, then the writable disk, then the overlay
 *   mount type=erofs source=serial:layer1 target=/run/mnt/l1 options=ro
 *   mount type=ext4 source=serial:upper name=upper options=rw
 *   mount type=format/mkdir/overlay source=overlay target=/run/mnt/root options=X-containerd.mkdir.path={{ mount 1 }}/upper:0755,X-containerd.mkdir.path={{ mount 1 }}/work:0755,upperdir={{ mount 1 }}/upper,workdir={{ mount 1 }}/work,lowerdir={{ overlay 0 0 }}
 *   root /run/mnt/root
 *
 * Lines. Lines end with "\n" (the last one may lack it). Blank lines and
 * lines whose first non-blank byte is '#' are ignored. Other lines are
 * words separated by spaces or tabs; the first word is the directive:
 *
 *   mount FIELD=VALUE...   one mount; mounts are numbered from 0 in the
 *                          order of their lines and done in that order.
 *   root PATH              optional, at most once: PATH (encoded as a
 *                          VALUE) is the target of the mount that becomes
 *                          the command's root.
 *
 * Outside comments a line holds only printable ASCII (0x21-0x7E), spaces
 * and tabs; NUL is an error anywhere.
 *
 * Fields of a mount, each at most once, in any order:
 *
 *   type=TYPE      required. [format/][mkdir/]FSTYPE, prefixes in this
 *                  order (containerd's), FSTYPE one of erofs, ext4, tmpfs,
 *                  bind, overlay. "format/" lets source, target and
 *                  options use templates; "mkdir/" runs the
 *                  X-containerd.mkdir.path options before mounting.
 *   source=VALUE   erofs, ext4: "serial:ID", the virtio-blk disk whose
 *                  serial is ID (1-20 bytes of [A-Za-z0-9._-]), or the
 *                  absolute path of a block device. bind: the absolute
 *                  path to bind. tmpfs, overlay: optional, "none" or a
 *                  label of [A-Za-z0-9._-] (shown in /proc/mounts);
 *                  defaults to "none".
 *   target=VALUE   the absolute mount point, created (mode 0755) if
 *                  missing. Unique within the plan, never "/".
 *   name=NAME      instead of target: target /run/mnt/NAME, NAME of
 *                  [A-Za-z0-9._-], not "." or "..". With neither field the
 *                  target of mount N is /run/mnt/N.
 *   options=LIST   comma-separated options, each encoded as a VALUE (so
 *                  "%2C" is a comma inside an option). Empty options are
 *                  errors.
 *
 * VALUE encoding: every byte outside 0x21-0x7E, '%' and (in an option)
 * ',' are written %XX, two hex digits of either case; %00 is an error.
 * mount_plan_encode() does it. A space between "{{" and "}}" may also be
 * written as is: the line is split into words only outside templates.
 *
 * Paths (targets, bind and device sources, root, mkdir paths, upperdir,
 * workdir and every lowerdir element), after template expansion, are
 * absolute, shorter than PATH_MAX, and have no empty, "." or ".."
 * component. An option handed to the kernel cannot hold a ',' and a
 * lowerdir element cannot hold a ':' (the kernel would split them).
 *
 * Templates (format/ mounts only; "{{" anywhere else is an error, so a
 * literal "{{" cannot be expressed): "{{ FUNC N... }}", N decimal and
 * naming an earlier mount, as containerd's core/mount/manager/format.go:
 *
 *   {{ mount N }}      the mount point (target) of mount N
 *   {{ target N }}     the same here: every mount is done at its target
 *   {{ source N }}     the source of mount N; an error for a serial:
 *                      source, which is no path
 *   {{ overlay A B }}  the targets of mounts A, A+1, ..., B joined with
 *                      ':', or A, A-1, ..., B when A > B (containerd's
 *                      order). overlayfs takes lowerdir top layer first,
 *                      so the producer lists the topmost layer first.
 *
 * Templates are not nested, but the target of mount N may itself be
 * built from templates; later mounts see its expanded value.
 *
 * Options. Flags become MS_* bits: ro, rw, nosuid, suid, nodev, dev,
 * noexec, exec, sync, async, dirsync, noatime, atime, nodiratime,
 * diratime, relatime, norelatime, strictatime, lazytime, nolazytime,
 * defaults, and for bind mounts only bind and rbind. Dropped, as they do
 * not apply inside the VM: "loop" (the guest sees a block device, not an
 * image file) and every "X-containerd.*" option (directions to
 * containerd's own mount manager, such as X-containerd.mkfs.*) except
 * X-containerd.mkdir.path. That one, in mkdir/ mounts only, is
 * "X-containerd.mkdir.path=PATH[:MODE[:UID:GID]]": create PATH (and its
 * missing parents, 0755) with octal MODE (default 0700, at most 07777)
 * and, if given, owner UID:GID (decimal, below 4294967295). PATH must lie
 * inside the target of an earlier mount and cannot hold a ':' (as in
 * containerd). Only a directory the executor created gets that owner and
 * mode; an existing one is left as it is. Every other option is passed
 * in mount(2)'s data string (bind mounts take flags only). erofs mounts
 * are always read-only. A read-only (or nosuid, nodev, noexec, atime)
 * bind mount is a bind followed by a remount that applies the flags.
 *
 * Limits: MOUNT_PLAN_MAX_TEXT bytes of text, MOUNT_PLAN_MAX_LINE bytes
 * per line, MOUNT_PLAN_MAX_MOUNTS mounts, MOUNT_PLAN_MAX_OPTIONS options
 * per mount, MOUNT_PLAN_MAX_VALUE bytes per expanded value (with its
 * NUL), and a data string of MOUNT_PLAN_MAX_DATA bytes with its NUL.
 */
#ifndef EROVM_MOUNT_PLAN_H
#define EROVM_MOUNT_PLAN_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MOUNT_PLAN_MAX_TEXT (256 * 1024)
#define MOUNT_PLAN_MAX_LINE 8192
#define MOUNT_PLAN_MAX_MOUNTS 64
#define MOUNT_PLAN_MAX_OPTIONS 32
#define MOUNT_PLAN_MAX_VALUE PATH_MAX
/* mount(2) copies at most one page of data. */
#define MOUNT_PLAN_MAX_DATA 4096
/* VIRTIO_BLK_ID_BYTES: a virtio-blk serial is at most 20 bytes. */
#define MOUNT_PLAN_MAX_SERIAL 20
#define MOUNT_PLAN_DEFAULT_DIR "/run/mnt"

enum mount_plan_fs {
	MOUNT_PLAN_EROFS,
	MOUNT_PLAN_EXT4,
	MOUNT_PLAN_TMPFS,
	MOUNT_PLAN_BIND,
	MOUNT_PLAN_OVERLAY,
};

/* One mount line; strings are decoded, source and target expanded. */
struct mount_plan_mount {
	unsigned int line;
	enum mount_plan_fs fs;
	bool format;		/* type had "format/": options hold templates */
	bool mkdir;		/* type had "mkdir/": mkdir directives allowed */
	char type[24];		/* as written, for messages */
	char *source;
	char *target;
	size_t option_count;
	char *options[MOUNT_PLAN_MAX_OPTIONS];
};

struct mount_plan {
	size_t mount_count;
	struct mount_plan_mount mounts[MOUNT_PLAN_MAX_MOUNTS];
	int root_index;		/* the mount named by "root", or -1 */
};

/* One X-containerd.mkdir.path directive. */
struct mount_plan_mkdir {
	char *path;
	mode_t mode;
	bool set_owner;
	uid_t uid;
	gid_t gid;
};

/* A mount with its templates expanded and its mkdir directives apart. */
struct mount_plan_resolved {
	const struct mount_plan_mount *mount;
	size_t option_count;
	char *options[MOUNT_PLAN_MAX_OPTIONS];	/* without mkdir directives */
	size_t mkdir_count;
	struct mount_plan_mkdir mkdirs[MOUNT_PLAN_MAX_OPTIONS];
};

/* What mount(2) gets for one resolved mount. */
struct mount_plan_syscall {
	const char *fstype;		/* NULL for bind mounts */
	char source[MOUNT_PLAN_MAX_VALUE];
	const char *target;		/* points into the plan */
	unsigned long flags;
	char data[MOUNT_PLAN_MAX_DATA];	/* "" means no data */
	unsigned long remount_flags;	/* 0: no remount after the mount */
};

/*
 * Maps disk serial @serial to a device path written to @path (@size
 * bytes). Returns 0, or a negative errno (-ENODEV: no such disk).
 */
typedef int (*mount_plan_serial_fn)(void *ctx, const char *serial,
				    char *path, size_t size);

/* The system calls of the executor; libc's, or recorders in tests. */
struct mount_plan_ops {
	int (*mkdir)(const char *path, mode_t mode);
	int (*chmod)(const char *path, mode_t mode);
	int (*chown)(const char *path, uid_t uid, gid_t gid);
	int (*mount)(const char *source, const char *target, const char *fstype,
		     unsigned long flags, const void *data);
	int (*umount2)(const char *target, int flags);
};

/* libc's mkdir, chmod, chown, mount and umount2. */
extern const struct mount_plan_ops mount_plan_system_ops;

struct mount_plan_env {
	const struct mount_plan_ops *ops;
	mount_plan_serial_fn resolve_serial;
	/* Called with each step, one line without "\n"; may be NULL. */
	void (*log)(void *ctx, const char *line);
	void *ctx;
};

/*
 * Parses the plan in @text (@len bytes, not NUL-terminated) into @plan.
 * Returns 0, or -1 with "line N: PROBLEM" in @err (@err_size bytes) and
 * @plan left empty. Everything a later step would reject, except what
 * only the guest can know (disks, the mounts themselves), is an error
 * here. Free a parsed plan with mount_plan_free().
 */
int mount_plan_parse(const char *text, size_t len, struct mount_plan *plan,
		     char *err, size_t err_size);

/* Frees what @plan holds and empties it; safe on an empty plan. */
void mount_plan_free(struct mount_plan *plan);

/*
 * Expands the templates of mount @index of @plan and separates its mkdir
 * directives from its other options, into @out. Pure: touches nothing
 * outside @out. Returns 0, or -1 with the problem in @err. Free @out
 * with mount_plan_resolved_free() after success.
 */
int mount_plan_resolve(const struct mount_plan *plan, size_t index,
		       struct mount_plan_resolved *out, char *err, size_t err_size);

void mount_plan_resolved_free(struct mount_plan_resolved *resolved);

/*
 * Turns @resolved into mount(2) arguments in @out: flags, data string and
 * source, a serial: source mapped by @resolve_serial(@ctx, ...). Returns
 * 0, or -1 with the problem in @err.
 */
int mount_plan_syscall_args(const struct mount_plan_resolved *resolved,
			    mount_plan_serial_fn resolve_serial, void *ctx,
			    struct mount_plan_syscall *out, char *err, size_t err_size);

/*
 * Does @plan: for each mount in order, creates its target, runs its mkdir
 * directives and mounts it (and remounts a bind mount that needs it),
 * logging each step through @env. On a failure, unmounts what it mounted,
 * last first, and returns -1 with "mount N (TYPE at TARGET): STEP: WHY" in
 * @err; directories it created stay. Returns 0 when all is mounted.
 */
int mount_plan_execute(const struct mount_plan *plan, const struct mount_plan_env *env,
		       char *err, size_t err_size);

/*
 * Finds the disk whose serial is @serial among @sys_block's entries
 * (normally "/sys/block"; each NAME/serial file holds a serial) and
 * writes "/dev/NAME" to @path. Returns 0, -ENODEV if no disk has that
 * serial, or another negative errno. A mount_plan_serial_fn when @ctx
 * is the directory.
 */
int mount_plan_find_disk(void *sys_block, const char *serial, char *path, size_t size);

/*
 * Encodes @value as a plan VALUE (see above; @in_option also encodes
 * ',') into @out, @size bytes. Returns its length, or -ENOSPC.
 */
int mount_plan_encode(const char *value, bool in_option, char *out, size_t size);

#endif
