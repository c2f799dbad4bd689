#include "guest-init/guest_init.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* /etc of a root image is shallow; deeper means something is wrong. */
#define ETC_COPY_MAX_DEPTH 8

struct mount_entry {
	const char *source, *target, *fstype;
	unsigned long flags;
	const char *data;
	bool create_target;	/* the target lives on a fresh devtmpfs */
	bool needed;		/* the command may rely on it: failing is fatal */
};

#define KERNEL_FS_FLAGS (MS_NOSUID | MS_NODEV | MS_NOEXEC)
#define SCRATCH_FLAGS (MS_NOSUID | MS_NODEV)

static const struct mount_entry mounts[] = {
	{ "proc", "/proc", "proc", KERNEL_FS_FLAGS, NULL, false, true },
	{ "sysfs", "/sys", "sysfs", KERNEL_FS_FLAGS, NULL, false, true },
	{ "cgroup2", "/sys/fs/cgroup", "cgroup2", KERNEL_FS_FLAGS, NULL, false, false },
	{ "tmpfs", "/run", "tmpfs", SCRATCH_FLAGS, "mode=0755", false, true },
	{ "tmpfs", "/tmp", "tmpfs", SCRATCH_FLAGS, "mode=1777", false, true },
	{ "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	  "mode=0620,ptmxmode=0666", true, false },
	{ "tmpfs", "/dev/shm", "tmpfs", SCRATCH_FLAGS, "mode=1777", true, true },
};

static bool mount_one(const struct mount_entry *m)
{
	if (m->create_target && mkdir(m->target, 0755) < 0 && errno != EEXIST) {
		report("mkdir %s: %s", m->target, strerror(errno));
		return false;
	}
	if (mount(m->source, m->target, m->fstype, m->flags, m->data) < 0) {
		report("mount %s (%s): %s", m->target, m->fstype, strerror(errno));
		return false;
	}
	return true;
}

void mount_dev(void)
{
	static const struct mount_entry dev = {
		"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", false, true,
	};
	struct stat root, dev_dir;

	/* CONFIG_DEVTMPFS_MOUNT mounts it before init runs, unless /dev is missing. */
	if (stat("/", &root) < 0 || stat("/dev", &dev_dir) < 0)
		fail("stat /dev: %s", strerror(errno));
	if (dev_dir.st_dev != root.st_dev)
		return;
	if (!mount_one(&dev))
		fail("/dev is needed");
}

static bool write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

/* Copies a regular file's content; the caller sets owner and mode. */
static bool copy_file(int from_dir, int to_dir, const char *name)
{
	char buf[16384];
	ssize_t n;
	bool ok = false;
	int in, out;

	in = openat(from_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return false;
	out = openat(to_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out >= 0) {
		while ((n = read(in, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
			if (n > 0 && !write_all(out, buf, (size_t)n))
				break;
		ok = n == 0;
		if (close(out) < 0)
			ok = false;
	}
	close(in);
	return ok;
}

static bool copy_tree(int from_dir, int to_dir, const char *path, int depth);

/* Copies entry @name of @from_dir (described by @st) into @to_dir. */
static bool copy_entry(int from_dir, int to_dir, const char *path,
		       const char *name, const struct stat *st, int depth)
{
	char target[PATH_MAX], sub_path[PATH_MAX];
	int from_sub, to_sub;
	ssize_t len;
	bool ok;

	snprintf(sub_path, sizeof(sub_path), "%s/%s", path, name);
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		ok = copy_file(from_dir, to_dir, name);
		break;
	case S_IFLNK:
		len = readlinkat(from_dir, name, target, sizeof(target));
		if ((size_t)len == sizeof(target))
			errno = ENAMETOOLONG;
		ok = len >= 0 && (size_t)len < sizeof(target);
		if (ok) {
			target[len] = '\0';
			ok = symlinkat(target, to_dir, name) == 0;
		}
		break;
	case S_IFDIR:
		if (depth == ETC_COPY_MAX_DEPTH) {
			report("copy %s: deeper than %d levels", sub_path, depth);
			return false;
		}
		/* Private until its content and mode are in place. */
		ok = mkdirat(to_dir, name, 0700) == 0;
		if (!ok)
			break;
		from_sub = openat(from_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		to_sub = openat(to_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		ok = from_sub >= 0 && to_sub >= 0 &&
		     copy_tree(from_sub, to_sub, sub_path, depth + 1);
		if (from_sub >= 0)
			close(from_sub);
		if (to_sub >= 0)
			close(to_sub);
		if (!ok)
			return false; /* copy_tree reported it */
		break;
	default:
		/* Device nodes or FIFOs in /etc are not configuration. */
		report("copy %s: skipped, not a file, directory or symlink", sub_path);
		return true;
	}
	/* Owner before mode: chown clears set-user-ID and set-group-ID bits. */
	if (!ok || fchownat(to_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    (!S_ISLNK(st->st_mode) && fchmodat(to_dir, name, st->st_mode & 07777, 0) < 0)) {
		report("copy %s: %s", sub_path, strerror(errno));
		return false;
	}
	return true;
}

/* Copies the entries of directory @from_dir, at @path, into @to_dir. */
static bool copy_tree(int from_dir, int to_dir, const char *path, int depth)
{
	struct dirent *entry;
	struct stat st;
	bool ok = true;
	DIR *dir;
	int fd;

	/* A descriptor of its own: readdir moves its offset, closedir closes it. */
	fd = openat(from_dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir) {
		report("read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	while (ok && (errno = 0, entry = readdir(dir))) {
		if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, ".."))
			continue;
		if (fstatat(from_dir, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			report("stat %s/%s: %s", path, entry->d_name, strerror(errno));
			ok = false;
		} else {
			ok = copy_entry(from_dir, to_dir, path, entry->d_name, &st, depth);
		}
	}
	if (ok && errno) {
		report("read %s: %s", path, strerror(errno));
		ok = false;
	}
	closedir(dir);
	return ok;
}

/*
 * Puts a tmpfs over /etc holding a copy of the image's /etc, so the
 * command can change its configuration (hosts, resolv.conf, ...) on a
 * read-only root. The image's /etc stays reachable through a descriptor
 * opened before the mount hides it.
 */
static void mount_writable_etc(void)
{
	char data[32];
	struct stat st;
	int image_etc, etc;

	image_etc = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (image_etc < 0 || fstat(image_etc, &st) < 0)
		fail("open /etc: %s", strerror(errno));
	snprintf(data, sizeof(data), "mode=%04o", (unsigned int)(st.st_mode & 07777));
	if (!mount_one(&(struct mount_entry){ "tmpfs", "/etc", "tmpfs", SCRATCH_FLAGS,
					      data, false, true }))
		fail("/etc is needed");
	etc = open("/etc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (etc < 0 || fchown(etc, st.st_uid, st.st_gid) < 0)
		fail("open the new /etc: %s", strerror(errno));
	if (!copy_tree(image_etc, etc, "/etc", 0))
		fail("cannot copy the image's /etc");
	close(etc);
	close(image_etc);
}

/* Sets the host name from the first line of /etc/hostname, if any. */
static void set_hostname(void)
{
	char name[HOST_NAME_MAX + 2];
	size_t len;
	FILE *file;

	file = fopen("/etc/hostname", "re");
	if (!file) {
		if (errno != ENOENT)
			report("open /etc/hostname: %s", strerror(errno));
		return;
	}
	if (!fgets(name, sizeof(name), file))
		name[0] = '\0';
	fclose(file);
	len = strcspn(name, " \t\r\n");
	if (len && sethostname(name, len) < 0)
		report("sethostname %.*s: %s", (int)len, name, strerror(errno));
}

void mount_filesystems(void)
{
	bool ok = true;

	for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++)
		if (!mount_one(&mounts[i]) && mounts[i].needed)
			ok = false;
	if (!ok)
		fail("a filesystem the command needs is missing");
	mount_writable_etc();
	set_hostname();
}

/* Longest mount list unmount_all() handles; the guest has a few dozen. */
#define UNMOUNT_MAX 512

/* Undoes mountinfo's escapes (\040 for a space, ...) in place. */
static void unescape_mount_point(char *s)
{
	char *out = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*out++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
			p += 3;
		} else {
			*out++ = *p;
		}
	}
	*out = '\0';
}

void unmount_all(void)
{
	char *points[UNMOUNT_MAX], line[PATH_MAX + 512];
	size_t count = 0;
	FILE *file;

	file = fopen("/proc/self/mountinfo", "re");
	if (!file) {
		report("unmount: open /proc/self/mountinfo: %s", strerror(errno));
		return;
	}
	/* "ID PARENT MAJ:MIN ROOT MOUNT-POINT ...": the fifth field. */
	while (count < UNMOUNT_MAX && fgets(line, sizeof(line), file)) {
		char point[PATH_MAX + 1];

		if (sscanf(line, "%*s %*s %*s %*s %4096s", point) != 1)
			continue;
		unescape_mount_point(point);
		if (!strcmp(point, "/") || !strcmp(point, "/dev"))
			continue;	/* the root, and the console guest-init holds */
		points[count] = strdup(point);
		if (points[count])
			count++;
	}
	fclose(file);
	while (count--) {
		if (umount2(points[count], 0) < 0 && errno != EINVAL && errno != ENOENT)
			report("unmount %s: %s", points[count], strerror(errno));
		free(points[count]);
	}
}
