/*
 * The mount plan (vmm/mount_plan.h) in guest-init: read from the disk
 * with serial GUEST_PLAN_SERIAL, executed before the command starts, and
 * the command's entry into the root the plan names.
 */
#include "guest-init/guest_init.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmm/guest_abi.h"
#include "vmm/mount_plan.h"

static char sys_block[] = "/sys/block";

static void log_step(void *ctx, const char *line)
{
	(void)ctx;
	report("plan: %s", line);
}

static const struct mount_plan_env plan_env = {
	.ops = &mount_plan_system_ops, .resolve_serial = mount_plan_find_disk,
	.log = log_step, .ctx = sys_block,
};

const struct mount_plan_env *guest_plan_env(void)
{
	return &plan_env;
}

/* The plan disk's text: up to the first NUL, at most MOUNT_PLAN_MAX_TEXT. */
static char *read_plan(const char *device, size_t *len)
{
	char *text = malloc(MOUNT_PLAN_MAX_TEXT + 1);
	size_t used = 0;
	int fd;

	if (!text)
		fail("plan: out of memory");
	fd = open(device, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("plan: open %s: %s", device, strerror(errno));
	while (used <= MOUNT_PLAN_MAX_TEXT) {
		ssize_t n = read(fd, text + used, MOUNT_PLAN_MAX_TEXT + 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("plan: read %s: %s", device, strerror(errno));
		if (n == 0)
			break;
		used += n;
	}
	close(fd);
	*len = strnlen(text, used);
	if (*len > MOUNT_PLAN_MAX_TEXT)
		fail("plan: longer than %d bytes", MOUNT_PLAN_MAX_TEXT);
	return text;
}

const char *run_mount_plan(void)
{
	static struct mount_plan plan;
	char device[64], err[512];
	size_t len;
	char *text;
	int ret;

	ret = mount_plan_find_disk(sys_block, GUEST_PLAN_SERIAL, device, sizeof(device));
	if (ret == -ENODEV)
		return NULL;
	if (ret < 0)
		fail("plan: looking for its disk: %s", strerror(-ret));
	text = read_plan(device, &len);
	if (mount_plan_parse(text, len, &plan, err, sizeof(err)) < 0)
		fail("plan: %s", err);
	free(text);
	if (mount_plan_execute(&plan, &plan_env, err, sizeof(err)) < 0)
		fail("plan: %s", err);
	if (plan.root_index < 0)
		return NULL;
	return plan.mounts[plan.root_index].target;
}

/* Mounts @fstype (or binds @source) at @root/@dir, creating @dir. */
static int mount_in_root(const char *root, const char *dir, const char *source,
			 const char *fstype, unsigned long flags)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", root, dir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -1;
	return mount(source, path, fstype, flags, NULL);
}

int enter_root(const char *root)
{
	/* A mount namespace of the command's own, so the old root can go. */
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	if (mount_in_root(root, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0 ||
	    mount_in_root(root, "sys", "sysfs", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0 ||
	    mount_in_root(root, "dev", "/dev", NULL, MS_BIND | MS_REC) < 0 ||
	    mount_in_root(root, "tmp", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV) < 0)
		return -1;
	/* pivot_root(".", "."): the old root ends up on top, then goes. */
	if (chdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return -1;
	return 0;
}
