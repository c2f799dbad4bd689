/*
 * layers.c - EROFS layer images, their cache, new ext4 images and the
 * flat multi-device EROFS check; see shim/layers.h.
 */
#include "shim/layers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim/text.h"

/* What the conversion does; part of every cache key. */
#define CONVERSION_VERSION "v1"
/* The tail of a failing tool's output that goes into the error. */
#define TOOL_OUTPUT_MAX 512
#define MESSAGE_SIZE 768

/* EROFS on-disk layout (fs/erofs/erofs_fs.h), little-endian. */
#define EROFS_SUPER_OFFSET 1024
#define EROFS_SUPER_MAGIC 0xE0F5E1E2u
#define EROFS_SB_BLKSZBITS 12
#define EROFS_SB_FEATURE_INCOMPAT 80
#define EROFS_SB_EXTRA_DEVICES 86
#define EROFS_SB_DEVT_SLOTOFF 88
#define EROFS_FEATURE_INCOMPAT_DEVICE_TABLE 0x00000008u
#define EROFS_DEVT_SLOT_SIZE 128
#define EROFS_SLOT_BLOCKS 64
#define EROFS_SLOT_MAPPED_BLKADDR 68

/*
 * Runs @argv (argv[0] looked up in PATH) with stdin on /dev/null and its
 * output collected; a failure's message ends with the output's tail.
 */
static int run_tool(char *const argv[], char *err, size_t err_size)
{
	char output[TOOL_OUTPUT_MAX + 1];
	size_t len = 0;
	int pipe_fds[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe2(pipe_fds, O_CLOEXEC) < 0)
		return shim_error(err, err_size, "%s: pipe: %s", argv[0], strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(pipe_fds[0]);
		close(pipe_fds[1]);
		return shim_error(err, err_size, "%s: fork: %s", argv[0], strerror(errno));
	}
	if (pid == 0) {
		int null_fd = open("/dev/null", O_RDONLY);

		if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(pipe_fds[1], 1) < 0 ||
		    dup2(pipe_fds[1], 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipe_fds[1]);
	/* Keep the last TOOL_OUTPUT_MAX bytes: the end says what went wrong. */
	while ((n = read(pipe_fds[0], output + len, TOOL_OUTPUT_MAX - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += (size_t)n;
		if (len == TOOL_OUTPUT_MAX) {
			memmove(output, output + TOOL_OUTPUT_MAX / 2, TOOL_OUTPUT_MAX / 2);
			len = TOOL_OUTPUT_MAX / 2;
		}
	}
	close(pipe_fds[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return shim_error(err, err_size, "%s: waitpid: %s", argv[0], strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	while (len && (output[len - 1] == '\n' || output[len - 1] == ' '))
		len--;
	output[len] = '\0';
	if (WIFEXITED(status))
		return shim_error(err, err_size, "%s failed (exit %d): %s", argv[0],
				 WEXITSTATUS(status), output);
	return shim_error(err, err_size, "%s killed by signal %d", argv[0], WTERMSIG(status));
}

static const char *tool(const char *configured, const char *name)
{
	return configured ? configured : name;
}

/* fsyncs the directory holding @path, so a rename into it is durable. */
static int sync_parent(const char *path, char *err, size_t err_size)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len = slash && slash != path ? (size_t)(slash - path) : 1;
	int fd, rc;

	if (len >= sizeof(dir))
		return shim_error(err, err_size, "%s: path too long", path);
	memcpy(dir, path, len);
	dir[len] = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return shim_error(err, err_size, "open %s: %s", dir, strerror(errno));
	rc = fsync(fd);
	close(fd);
	if (rc < 0)
		return shim_error(err, err_size, "fsync %s: %s", dir, strerror(errno));
	return 0;
}

static int sync_file(const char *path, char *err, size_t err_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return shim_error(err, err_size, "open %s: %s", path, strerror(errno));
	rc = fsync(fd);
	close(fd);
	if (rc < 0)
		return shim_error(err, err_size, "fsync %s: %s", path, strerror(errno));
	return 0;
}

/* Writes "@final.tmp.PID" to @tmp. */
static int temp_name(const char *final, char *tmp, size_t size, char *err, size_t err_size)
{
	if ((size_t)snprintf(tmp, size, "%s.tmp.%ld", final, (long)getpid()) >= size)
		return shim_error(err, err_size, "%s: path too long", final);
	return 0;
}

/* Syncs @tmp and renames it to @final, durably; removes @tmp on failure. */
static int publish(const char *tmp, const char *final, char *err, size_t err_size)
{
	if (sync_file(tmp, err, err_size) < 0)
		goto fail;
	if (rename(tmp, final) < 0) {
		shim_error(err, err_size, "rename %s to %s: %s", tmp, final, strerror(errno));
		goto fail;
	}
	return sync_parent(final, err, err_size);
fail:
	unlink(tmp);
	return -1;
}

/* mkfs.erofs @dir into @out (a new file). */
static int convert(const struct layer_tools *tools, const char *dir, const char *out,
		   char *err, size_t err_size)
{
	char *argv[] = { (char *)tool(tools->mkfs_erofs, "mkfs.erofs"), (char *)out,
			 (char *)dir, NULL };
	struct stat st;

	if (stat(dir, &st) < 0)
		return shim_error(err, err_size, "layer %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return shim_error(err, err_size, "layer %s: not a directory", dir);
	unlink(out);
	if (run_tool(argv, err, err_size) < 0) {
		unlink(out);
		return -1;
	}
	return 0;
}

int layer_build_image(const struct layer_tools *tools, const char *dir, const char *image,
		      char *err, size_t err_size)
{
	char tmp[PATH_MAX];

	if (temp_name(image, tmp, sizeof(tmp), err, err_size) < 0 ||
	    convert(tools, dir, tmp, err, err_size) < 0)
		return -1;
	return publish(tmp, image, err, err_size);
}

static int make_cache_dir(const char *path, char *err, size_t err_size)
{
	char partial[PATH_MAX];
	size_t len = strlen(path);

	if (path[0] != '/' || len >= sizeof(partial))
		return shim_error(err, err_size, "layer cache %s: not an absolute path", path);
	memcpy(partial, path, len + 1);
	for (size_t end = 1; end <= len; end++) {
		if (end < len && partial[end] != '/')
			continue;
		partial[end] = '\0';
		if (mkdir(partial, 0700) < 0 && errno != EEXIST)
			return shim_error(err, err_size, "mkdir %s: %s", partial, strerror(errno));
		partial[end] = path[end];
	}
	return 0;
}

static bool same_directory(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static bool is_regular_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int layer_cache_get(const struct layer_tools *tools, const char *dir, char *image, size_t size,
		    bool *converted, char *err, size_t err_size)
{
	const char *cache = tools->cache_dir ? tools->cache_dir : LAYERS_DEFAULT_CACHE;
	char lock_path[PATH_MAX], tmp[PATH_MAX];
	struct stat before, after;
	int lock_fd, rc = -1;

	*converted = false;
	if (stat(dir, &before) < 0)
		return shim_error(err, err_size, "layer %s: %s", dir, strerror(errno));
	if (!S_ISDIR(before.st_mode))
		return shim_error(err, err_size, "layer %s: not a directory", dir);
	if ((size_t)snprintf(image, size, "%s/%ju-%ju-%jd.%09ld-" CONVERSION_VERSION ".erofs",
			     cache, (uintmax_t)before.st_dev, (uintmax_t)before.st_ino,
			     (intmax_t)before.st_ctim.tv_sec, before.st_ctim.tv_nsec) >= size ||
	    (size_t)snprintf(lock_path, sizeof(lock_path), "%.*s.lock",
			     (int)(strlen(image) - strlen(".erofs")), image) >= sizeof(lock_path))
		return shim_error(err, err_size, "layer cache %s: path too long", cache);
	if (is_regular_file(image))
		return 0;
	if (make_cache_dir(cache, err, err_size) < 0)
		return -1;
	lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0)
		return shim_error(err, err_size, "open %s: %s", lock_path, strerror(errno));
	while (flock(lock_fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			shim_error(err, err_size, "flock %s: %s", lock_path, strerror(errno));
			goto out;
		}
	}
	/* Another shim may have converted it while this one waited. */
	if (is_regular_file(image)) {
		rc = 0;
		goto out;
	}
	if (temp_name(image, tmp, sizeof(tmp), err, err_size) < 0 ||
	    convert(tools, dir, tmp, err, err_size) < 0)
		goto out;
	if (stat(dir, &after) < 0 || !same_directory(&before, &after)) {
		unlink(tmp);
		shim_error(err, err_size, "layer %s changed while it was converted: not an "
			  "immutable (committed) layer", dir);
		goto out;
	}
	rc = publish(tmp, image, err, err_size);
	*converted = rc == 0;
out:
	close(lock_fd);
	return rc;
}

static int check_empty_dir(const char *path, char *err, size_t err_size)
{
	DIR *dir = opendir(path);
	struct dirent *entry;
	int rc = 0;

	if (!dir)
		return shim_error(err, err_size, "upperdir %s: %s", path, strerror(errno));
	while ((errno = 0, entry = readdir(dir))) {
		if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, "..")) {
			rc = shim_error(err, err_size, "upperdir %s is not empty (it holds \"%s\"): "
				       "its content would not reach the VM", path, entry->d_name);
			break;
		}
	}
	if (!rc && errno)
		rc = shim_error(err, err_size, "readdir %s: %s", path, strerror(errno));
	closedir(dir);
	return rc;
}

int layer_create_ext4(const struct layer_tools *tools, const char *path, uint64_t size,
		      char *err, size_t err_size)
{
	char tmp[PATH_MAX];
	char *argv[] = { (char *)tool(tools->mkfs_ext4, "mkfs.ext4"), "-q", "-F", tmp, NULL };
	int fd;

	if (access(path, F_OK) == 0)
		return 0;
	if (size > INT64_MAX)
		return shim_error(err, err_size, "%s: size %" PRIu64 " is too large", path, size);
	if (temp_name(path, tmp, sizeof(tmp), err, err_size) < 0)
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return shim_error(err, err_size, "create %s: %s", tmp, strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		shim_error(err, err_size, "truncate %s to %" PRIu64 " bytes: %s", tmp, size,
			  strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (run_tool(argv, err, err_size) < 0) {
		unlink(tmp);
		return -1;
	}
	return publish(tmp, path, err, err_size);
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int read_at(int fd, void *buf, size_t len, off_t offset)
{
	ssize_t n = pread(fd, buf, len, offset);

	return n == (ssize_t)len ? 0 : -1;
}

int layer_check_flat_erofs(const struct disk *disk, char *err, size_t err_size)
{
	const char *meta = disk->extents[0].path;
	uint8_t sb[128], slot[EROFS_DEVT_SLOT_SIZE];
	unsigned int blkszbits, devices;
	uint64_t block_size, next_block;
	struct stat st;
	int fd, rc = -1;

	if (!disk->extent_count)
		return shim_error(err, err_size, "disk %s has no extents", disk->serial);
	for (size_t i = 0; i < disk->extent_count; i++)
		if (disk->extents[i].offset || disk->extents[i].length)
			return shim_error(err, err_size, "disk %s: extent %zu is not a whole file",
					 disk->serial, i);
	fd = open(meta, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return shim_error(err, err_size, "%s: %s", meta, strerror(errno));
	if (fstat(fd, &st) < 0 || read_at(fd, sb, sizeof(sb), EROFS_SUPER_OFFSET) < 0 ||
	    le32(sb) != EROFS_SUPER_MAGIC) {
		shim_error(err, err_size, "%s: not an EROFS image", meta);
		goto out;
	}
	blkszbits = sb[EROFS_SB_BLKSZBITS];
	if (blkszbits < 9 || blkszbits > 16) {
		shim_error(err, err_size, "%s: EROFS block size 2^%u is not supported", meta, blkszbits);
		goto out;
	}
	block_size = 1ULL << blkszbits;
	devices = le32(sb + EROFS_SB_FEATURE_INCOMPAT) & EROFS_FEATURE_INCOMPAT_DEVICE_TABLE
			  ? le16(sb + EROFS_SB_EXTRA_DEVICES) : 0;
	if (devices != disk->extent_count - 1) {
		shim_error(err, err_size, "%s: its device table lists %u blobs, the mount gives %zu",
			  meta, devices, disk->extent_count - 1);
		goto out;
	}
	if ((uint64_t)st.st_size % block_size && devices) {
		shim_error(err, err_size, "%s: %jd bytes, not whole %" PRIu64 "-byte blocks",
			  meta, (intmax_t)st.st_size, block_size);
		goto out;
	}
	next_block = (uint64_t)st.st_size / block_size;
	for (unsigned int i = 0; i < devices; i++) {
		const char *blob = disk->extents[i + 1].path;
		off_t slot_offset = (off_t)le16(sb + EROFS_SB_DEVT_SLOTOFF) * EROFS_DEVT_SLOT_SIZE +
				    (off_t)i * EROFS_DEVT_SLOT_SIZE;
		struct stat blob_st;
		uint32_t mapped;

		if (read_at(fd, slot, sizeof(slot), slot_offset) < 0) {
			shim_error(err, err_size, "%s: device slot %u cannot be read", meta, i);
			goto out;
		}
		if (stat(blob, &blob_st) < 0) {
			shim_error(err, err_size, "blob %s: %s", blob, strerror(errno));
			goto out;
		}
		mapped = le32(slot + EROFS_SLOT_MAPPED_BLKADDR);
		if (mapped != next_block) {
			shim_error(err, err_size, "%s: blob %u (%s) is mapped at block %" PRIu32
				  ", but lies at block %" PRIu64 " of the flat disk: not a flat "
				  "multi-device EROFS", meta, i + 1, blob, mapped, next_block);
			goto out;
		}
		if ((uint64_t)blob_st.st_size % block_size && i + 1 < devices) {
			shim_error(err, err_size, "blob %s: not whole %" PRIu64 "-byte blocks",
				  blob, block_size);
			goto out;
		}
		if (le32(slot + EROFS_SLOT_BLOCKS) >
		    ((uint64_t)blob_st.st_size + block_size - 1) / block_size) {
			shim_error(err, err_size, "blob %s: shorter than the %" PRIu32 " blocks its "
				  "device slot says", blob, le32(slot + EROFS_SLOT_BLOCKS));
			goto out;
		}
		next_block += ((uint64_t)blob_st.st_size + block_size - 1) / block_size;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

static int prepare_disk(struct disk *disk, const struct layer_tools *tools,
			char *err, size_t err_size)
{
	char image[PATH_MAX];
	bool converted;

	switch (disk->source) {
	case DISK_LAYER:
		if (disk->extent_count)
			return 0;
		if (layer_cache_get(tools, disk->directory, image, sizeof(image), &converted,
				    err, err_size) < 0)
			return -1;
		return disk_add_extent(disk, image, 0, 0, err, err_size);
	case DISK_DIRECTORY:
		return layer_build_image(tools, disk->directory, disk->extents[0].path,
					 err, err_size);
	case DISK_NEW_EXT4:
		if (disk->require_empty && check_empty_dir(disk->require_empty, err, err_size) < 0)
			return -1;
		return layer_create_ext4(tools, disk->extents[0].path, disk->size, err, err_size);
	case DISK_FILES:
		if (disk->read_only && disk->extent_count > 1)
			return layer_check_flat_erofs(disk, err, err_size);
		return 0;
	}
	return shim_error(err, err_size, "unknown disk source %d", (int)disk->source);
}

int layers_prepare_disks(struct disk_set *set, const struct layer_tools *tools,
			 char *err, size_t err_size)
{
	char msg[MESSAGE_SIZE];

	for (size_t i = 0; i < set->count; i++) {
		struct disk *disk = &set->disks[i];

		if ((disk->source == DISK_DIRECTORY || disk->source == DISK_NEW_EXT4) &&
		    !disk->extent_count)
			return shim_error(err, err_size, "disk %s: no image path", disk->serial);
		if (prepare_disk(disk, tools, msg, sizeof(msg)) < 0)
			return shim_error(err, err_size, "disk %s: %s", disk->serial, msg);
	}
	return 0;
}
