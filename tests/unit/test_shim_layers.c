/*
 * Unit tests for shim/layers.c, on real files (as root: whiteouts are
 * device nodes, trusted.* xattrs need CAP_SYS_ADMIN, and the images are
 * checked by loop-mounting them). A layer with an overlayfs whiteout and
 * an opaque directory converts to an EROFS image that keeps them, with
 * owners, modes and times; the cache converts a layer once, also when
 * two processes ask at once; failures leave no partial image; new ext4
 * images are sparse and never overwrite; flat multi-device EROFS disks
 * are checked; layers_prepare_disks() readies a whole disk set.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "shim/layers.h"

static char work[64];
static char layer[128], cache[128], mnt[128];

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void run(const char *fmt, ...)
{
	char command[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(command, sizeof(command), fmt, ap);
	va_end(ap);
	if (system(command) != 0)
		fail_msg("command failed: %s", command);
}

static void write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(content, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void read_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* A layer as the overlay snapshotter leaves it: whiteout, opaque dir, owners. */
static void make_layer(const char *dir)
{
	char path[PATH_MAX];
	struct timeval times[2] = { { 1000000000, 0 }, { 1000000000, 0 } };

	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/hello.txt", dir);
	write_file(path, "hello from the layer\n");
	assert_int_equal(chown(path, 1234, 5678), 0);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(utimes(path, times), 0);
	snprintf(path, sizeof(path), "%s/gone.txt", dir);
	assert_int_equal(mknod(path, S_IFCHR | 0600, makedev(0, 0)), 0);
	snprintf(path, sizeof(path), "%s/opaque", dir);
	assert_int_equal(mkdir(path, 0750), 0);
	assert_int_equal(setxattr(path, "trusted.overlay.opaque", "y", 1, 0), 0);
	snprintf(path, sizeof(path), "%s/opaque/new.txt", dir);
	write_file(path, "new\n");
	snprintf(path, sizeof(path), "%s/link", dir);
	assert_int_equal(symlink("hello.txt", path), 0);
}

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		print_message("needs root (device nodes, trusted.* xattrs, loop mounts)\n");
		return -1;
	}
	snprintf(work, sizeof(work), "/tmp/erovm-layers-XXXXXX");
	if (!mkdtemp(work))
		return -1;
	snprintf(layer, sizeof(layer), "%s/layer", work);
	snprintf(cache, sizeof(cache), "%s/cache", work);
	snprintf(mnt, sizeof(mnt), "%s/mnt", work);
	make_layer(layer);
	return mkdir(mnt, 0755);
}

static int teardown(void **state)
{
	char command[512];

	(void)state;
	snprintf(command, sizeof(command), "umount -q %s 2>/dev/null; rm -rf %s", mnt, work);
	return system(command) == 0 ? 0 : -1;
}

static const struct layer_tools *tools(void)
{
	static struct layer_tools t;

	t = (struct layer_tools){ .cache_dir = cache };
	return &t;
}

static void converts_whiteouts_and_opaque_dirs(void **state)
{
	char image[PATH_MAX], path[PATH_MAX], buf[256], err[1024];
	bool converted;
	struct stat st;

	(void)state;
	if (layer_cache_get(tools(), layer, image, sizeof(image), &converted, err, sizeof(err)) < 0)
		fail_msg("layer_cache_get: %s", err);
	assert_true(converted);
	assert_int_equal(strncmp(image, cache, strlen(cache)), 0);
	run("mount -t erofs -o loop,ro %s %s", image, mnt);

	snprintf(path, sizeof(path), "%s/gone.txt", mnt);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(0, 0));
	snprintf(path, sizeof(path), "%s/opaque", mnt);
	assert_int_equal(getxattr(path, "trusted.overlay.opaque", buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'y');
	snprintf(path, sizeof(path), "%s/hello.txt", mnt);
	read_file(path, buf, sizeof(buf));
	assert_string_equal(buf, "hello from the layer\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 5678);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_mtime, 1000000000);
	snprintf(path, sizeof(path), "%s/link", mnt);
	assert_int_equal(readlink(path, buf, sizeof(buf)), 9);
	assert_memory_equal(buf, "hello.txt", 9);
	snprintf(path, sizeof(path), "%s/opaque/new.txt", mnt);
	read_file(path, buf, sizeof(buf));
	assert_string_equal(buf, "new\n");
	run("umount %s", mnt);
}

static void cache_hits_and_misses(void **state)
{
	char first[PATH_MAX], second[PATH_MAX], third[PATH_MAX], path[PATH_MAX], err[1024];
	struct stat st1, st2;
	bool converted;

	(void)state;
	assert_int_equal(layer_cache_get(tools(), layer, first, sizeof(first), &converted,
					 err, sizeof(err)), 0);
	assert_true(converted);
	assert_int_equal(stat(first, &st1), 0);
	assert_int_equal(layer_cache_get(tools(), layer, second, sizeof(second), &converted,
					 err, sizeof(err)), 0);
	assert_false(converted);
	assert_string_equal(first, second);
	assert_int_equal(stat(second, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);

	/* A different directory (here: the same one changed) is another key. */
	snprintf(path, sizeof(path), "%s/added", layer);
	write_file(path, "x");
	assert_int_equal(layer_cache_get(tools(), layer, third, sizeof(third), &converted,
					 err, sizeof(err)), 0);
	assert_true(converted);
	assert_string_not_equal(first, third);
}

/* Counts its runs in COUNT, waits, then runs the real mkfs.erofs. */
static void make_counting_mkfs(char *script, size_t size, const char *count)
{
	char text[PATH_MAX * 2];

	snprintf(script, size, "%s/mkfs-counting", work);
	snprintf(text, sizeof(text), "#!/bin/sh\necho run >>%s\nsleep 1\nexec mkfs.erofs \"$@\"\n",
		 count);
	write_file(script, text);
	assert_int_equal(chmod(script, 0755), 0);
}

static void concurrent_shims_convert_once(void **state)
{
	char script[PATH_MAX], count[PATH_MAX], images[2][PATH_MAX], lines[256];
	struct layer_tools t = { .cache_dir = cache, .mkfs_erofs = script };
	int pipes[2][2];
	pid_t pids[2];

	(void)state;
	snprintf(count, sizeof(count), "%s/count", work);
	make_counting_mkfs(script, sizeof(script), count);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pipe(pipes[i]), 0);
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char image[PATH_MAX], err[1024];
			bool converted;
			int rc = layer_cache_get(&t, layer, image, sizeof(image), &converted,
						 err, sizeof(err));

			dprintf(pipes[i][1], "%s", rc == 0 ? image : err);
			_exit(rc == 0 ? 0 : 1);
		}
		close(pipes[i][1]);
	}
	for (int i = 0; i < 2; i++) {
		int status;
		ssize_t n = read(pipes[i][0], images[i], sizeof(images[i]) - 1);

		assert_true(n > 0);
		images[i][n] = '\0';
		close(pipes[i][0]);
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fail_msg("child %d failed: %s", i, images[i]);
	}
	assert_string_equal(images[0], images[1]);
	read_file(count, lines, sizeof(lines));
	assert_string_equal(lines, "run\n");
}

/* Only the image and its lock file may be in the cache. */
static void assert_cache_has_no_temporaries(void)
{
	DIR *dir = opendir(cache);
	struct dirent *entry;

	if (!dir)
		return;
	while ((entry = readdir(dir)))
		if (strstr(entry->d_name, ".tmp."))
			fail_msg("temporary file left: %s", entry->d_name);
	closedir(dir);
}

static void conversion_failures(void **state)
{
	char script[PATH_MAX], image[PATH_MAX], missing[PATH_MAX], err[1024];
	struct layer_tools t = { .cache_dir = cache, .mkfs_erofs = script };
	bool converted;

	(void)state;
	snprintf(missing, sizeof(missing), "%s/missing", work);
	assert_int_equal(layer_cache_get(tools(), missing, image, sizeof(image), &converted,
					 err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file or directory"));

	snprintf(script, sizeof(script), "%s/mkfs-failing", work);
	write_file(script, "#!/bin/sh\necho partial >\"$1\"\necho 'boom: no space' >&2\nexit 3\n");
	assert_int_equal(chmod(script, 0755), 0);
	assert_int_equal(layer_cache_get(&t, layer, image, sizeof(image), &converted,
					 err, sizeof(err)), -1);
	assert_non_null(strstr(err, "mkfs-failing failed (exit 3): boom: no space"));
	assert_int_equal(access(image, F_OK), -1);
	assert_cache_has_no_temporaries();

	snprintf(script, sizeof(script), "%s/no-such-tool", work);
	assert_int_equal(layer_cache_get(&t, layer, image, sizeof(image), &converted,
					 err, sizeof(err)), -1);
	assert_non_null(strstr(err, "failed (exit 127): cannot run"));
}

static void new_ext4_images(void **state)
{
	char path[PATH_MAX], err[1024];
	uint8_t magic[2];
	struct stat st;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/upper.ext4", work);
	if (layer_create_ext4(tools(), path, 1ULL << 30, err, sizeof(err)) < 0)
		fail_msg("layer_create_ext4: %s", err);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1LL << 30);
	assert_true((uint64_t)st.st_blocks * 512 < (64ULL << 20));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	/* The ext4 superblock's magic, 0xEF53, at byte 1080. */
	assert_int_equal(pread(fd, magic, 2, 1080), 2);
	assert_int_equal(magic[0] | magic[1] << 8, 0xef53);
	assert_int_equal(pwrite(fd, "keep", 4, 0), 4);
	close(fd);
	/* An existing image holds a container's writes: never recreated. */
	assert_int_equal(layer_create_ext4(tools(), path, 1ULL << 20, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1LL << 30);
}

static void put_le32(const char *path, off_t offset, uint32_t value)
{
	uint8_t bytes[4] = { value, value >> 8, value >> 16, value >> 24 };
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, 4, offset), 4);
	close(fd);
}

static void flat_erofs_check(void **state)
{
	char meta[PATH_MAX], blob[PATH_MAX], err[1024];
	struct disk_spec spec = { .role = DISK_ROLE_ROOTFS, .source = DISK_FILES, .read_only = true };
	struct disk_set set;
	struct disk *flat, *alone;
	struct stat meta_st, blob_st;
	uint8_t slotoff[2];
	off_t slot;
	int fd;

	(void)state;
	snprintf(meta, sizeof(meta), "%s/fsmeta.erofs", work);
	snprintf(blob, sizeof(blob), "%s/blob.erofs", work);
	run("mkfs.erofs --blobdev=%s --chunksize=4096 %s %s >/dev/null 2>&1", blob, meta, layer);
	disk_set_init(&set);
	flat = disk_set_add(&set, &spec, err, sizeof(err));
	alone = disk_set_add(&set, &spec, err, sizeof(err));
	assert_int_equal(disk_add_extent(flat, meta, 0, 0, err, sizeof(err)), 0);
	assert_int_equal(disk_add_extent(flat, blob, 0, 0, err, sizeof(err)), 0);
	assert_int_equal(disk_add_extent(alone, meta, 0, 0, err, sizeof(err)), 0);

	/* mkfs.erofs 1.5 leaves the slot unmapped: no flat disk. */
	assert_int_equal(layer_check_flat_erofs(flat, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is mapped at block 0, but lies at block"));
	assert_int_equal(layer_check_flat_erofs(alone, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "its device table lists 1 blobs, the mount gives 0"));

	/* Mapped where the concatenation puts it (as erofs-flatten does): fine. */
	assert_int_equal(stat(meta, &meta_st), 0);
	assert_int_equal(stat(blob, &blob_st), 0);
	fd = open(meta, O_RDONLY);
	assert_int_equal(pread(fd, slotoff, 2, 1024 + 88), 2);
	close(fd);
	slot = (off_t)(slotoff[0] | slotoff[1] << 8) * 128;
	put_le32(meta, slot + 64, (uint32_t)((blob_st.st_size + 4095) / 4096));
	put_le32(meta, slot + 68, (uint32_t)(meta_st.st_size / 4096));
	if (layer_check_flat_erofs(flat, err, sizeof(err)) < 0)
		fail_msg("layer_check_flat_erofs: %s", err);

	put_le32(meta, slot + 64, (uint32_t)((blob_st.st_size + 4095) / 4096) + 1);
	assert_int_equal(layer_check_flat_erofs(flat, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "shorter than the"));
	assert_int_equal(layer_check_flat_erofs(&(struct disk){ .serial = "x", .extent_count = 1,
		.extents = &(struct disk_extent){ .path = layer } }, err, sizeof(err)), -1);
	disk_set_free(&set);
}

static void prepares_a_disk_set(void **state)
{
	char upper_dir[128], image[128], ext4[128], path[PATH_MAX], err[1024];
	struct disk_set set;
	struct disk *d;

	(void)state;
	snprintf(upper_dir, sizeof(upper_dir), "%s/upper", work);
	snprintf(image, sizeof(image), "%s/dir.erofs", work);
	snprintf(ext4, sizeof(ext4), "%s/rw.ext4", work);
	assert_int_equal(mkdir(upper_dir, 0755), 0);
	disk_set_init(&set);
	assert_non_null(disk_set_add(&set, &(struct disk_spec){ .source = DISK_LAYER,
		.directory = layer, .read_only = true }, err, sizeof(err)));
	d = disk_set_add(&set, &(struct disk_spec){ .source = DISK_NEW_EXT4, .size = 64 << 20,
		.require_empty = upper_dir }, err, sizeof(err));
	assert_int_equal(disk_add_extent(d, ext4, 0, 0, err, sizeof(err)), 0);
	d = disk_set_add(&set, &(struct disk_spec){ .role = DISK_ROLE_VOLUME,
		.source = DISK_DIRECTORY, .directory = layer, .read_only = true }, err, sizeof(err));
	assert_int_equal(disk_add_extent(d, image, 0, 0, err, sizeof(err)), 0);

	/* A non-empty upperdir is refused before anything is made. */
	snprintf(path, sizeof(path), "%s/leftover", upper_dir);
	write_file(path, "x");
	assert_int_equal(layers_prepare_disks(&set, tools(), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "disk rootfs-1: upperdir "));
	assert_non_null(strstr(err, "is not empty (it holds \"leftover\")"));
	assert_int_equal(access(ext4, F_OK), -1);
	assert_int_equal(unlink(path), 0);

	if (layers_prepare_disks(&set, tools(), err, sizeof(err)) < 0)
		fail_msg("layers_prepare_disks: %s", err);
	assert_int_equal(set.disks[0].extent_count, 1);
	assert_int_equal(strncmp(set.disks[0].extents[0].path, cache, strlen(cache)), 0);
	assert_int_equal(access(ext4, F_OK), 0);
	run("mount -t erofs -o loop,ro %s %s && test -c %s/gone.txt && umount %s", image, mnt,
	    mnt, mnt);
	/* Prepared again (a restarted shim): the layer disk keeps its image. */
	assert_int_equal(layers_prepare_disks(&set, tools(), err, sizeof(err)), 0);
	assert_int_equal(set.disks[0].extent_count, 1);
	disk_set_free(&set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(converts_whiteouts_and_opaque_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(cache_hits_and_misses, setup, teardown),
		cmocka_unit_test_setup_teardown(concurrent_shims_convert_once, setup, teardown),
		cmocka_unit_test_setup_teardown(conversion_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(new_ext4_images, setup, teardown),
		cmocka_unit_test_setup_teardown(flat_erofs_check, setup, teardown),
		cmocka_unit_test_setup_teardown(prepares_a_disk_set, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
