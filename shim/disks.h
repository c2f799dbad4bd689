/*
 * disks.h - the virtio-blk disks of one container VM: what backs each
 * disk and the serial the guest finds it by (mount plans name disks as
 * "serial:ID", vmm/mount_plan.h).
 *
 * One allocator per VM (struct disk_set) hands out every disk: the
 * container's root filesystem first (shim/rootfs.h), then its volumes
 * (shim/oci.h). Serials are "rootfs-N" and "volume-N", N counting from 0
 * within each role, so a serial never depends on how many disks the
 * other role has. A VM takes at most DISKS_MAX disks (vmm-run's limit);
 * asking for more is an error naming the limit.
 *
 * A disk is first a description: deciding the disks has no side effect.
 * Some disks need work before the VM starts (shim/layers.h does it):
 *
 *   DISK_FILES      the extents name existing files or block devices;
 *   DISK_NEW_EXT4   extent 0 is an ext4 image of @size bytes, created
 *                   (sparse) if missing; @require_empty, if set, is a
 *                   host directory that must be empty (its content would
 *                   not reach the VM);
 *   DISK_LAYER      @directory is an immutable layer (a committed
 *                   snapshot): converted once into a shared, cached EROFS
 *                   image, which then becomes extent 0 (no extent before);
 *   DISK_DIRECTORY  @directory may change: copied into a private EROFS
 *                   image at extent 0's path, replacing any file there.
 *
 * The extents of a disk are byte ranges of files the guest sees
 * concatenated (vmm-run's "extents=" disks). Their paths are absolute
 * and cannot hold ':', ',' or '@', which vmm-run's --disk syntax uses.
 *
 * A disk set is plain data: single-threaded, owned by its caller, freed
 * with disk_set_free(). Functions that can fail return 0 or -1 with a
 * message in @err (@err_size bytes).
 */
#ifndef EROVM_SHIM_DISKS_H
#define EROVM_SHIM_DISKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* vmm-run takes the root image and at most 64 --disk disks. */
#define DISKS_MAX 64
/* A virtio-blk serial is at most 20 bytes (VIRTIO_BLK_ID_BYTES). */
#define DISK_SERIAL_MAX 20
/* Pieces of one flat disk: an EROFS metadata image and its blobs. */
#define DISK_EXTENTS_MAX 128

enum disk_role {
	DISK_ROLE_ROOTFS,
	DISK_ROLE_VOLUME,
};

enum disk_source {
	DISK_FILES,
	DISK_NEW_EXT4,
	DISK_LAYER,
	DISK_DIRECTORY,
};

struct disk_extent {
	char *path;
	uint64_t offset;
	uint64_t length;	/* 0: to the end of the file */
};

/* What to allocate; strings are copied. */
struct disk_spec {
	enum disk_role role;
	enum disk_source source;
	bool read_only;
	const char *directory;		/* DISK_LAYER, DISK_DIRECTORY */
	uint64_t size;			/* DISK_NEW_EXT4 */
	const char *require_empty;	/* DISK_NEW_EXT4, optional */
};

struct disk {
	enum disk_role role;
	enum disk_source source;
	char serial[DISK_SERIAL_MAX + 1];
	bool read_only;
	char *directory;
	uint64_t size;
	char *require_empty;
	size_t extent_count;
	struct disk_extent *extents;
};

struct disk_set {
	size_t count;
	struct disk disks[DISKS_MAX];
	unsigned int next_index[2];	/* per role */
};

void disk_set_init(struct disk_set *set);

/* Frees what @set holds and empties it. */
void disk_set_free(struct disk_set *set);

/*
 * Allocates the next disk as @spec describes, with its serial. Rootfs
 * disks come before volumes: a rootfs disk after a volume is an error,
 * as is a disk past DISKS_MAX or a spec whose fields do not fit its
 * source. Returns the disk (owned by @set), or NULL with @err.
 */
struct disk *disk_set_add(struct disk_set *set, const struct disk_spec *spec,
			  char *err, size_t err_size);

/* Appends an extent to @disk (see the path rules above). */
int disk_add_extent(struct disk *disk, const char *path, uint64_t offset, uint64_t length,
		    char *err, size_t err_size);

/*
 * Frees the disks past the first @count of @set (undoing disk_set_add()
 * calls), so their serials are handed out again.
 */
void disk_set_truncate(struct disk_set *set, size_t count);

/* The disk whose serial is @serial, or NULL. */
struct disk *disk_set_find(struct disk_set *set, const char *serial);

/*
 * Writes @disk as a vmm-run --disk value ("FILE,ro,serial=ID" or
 * "extents=A:B@OFF+LEN,...") into @buf (@size bytes). Returns its
 * length, -EINVAL if the disk has no extents yet, or -ENOSPC.
 */
int disk_format_arg(const struct disk *disk, char *buf, size_t size);

/* @set as JSON (an array of disks), to record it; NULL if out of memory. */
json_object *disk_set_to_json(const struct disk_set *set);

/*
 * Reads back what disk_set_to_json() wrote into @set (initialised here),
 * checking everything disk_set_add() and disk_add_extent() check.
 */
int disk_set_from_json(json_object *json, struct disk_set *set, char *err, size_t err_size);

#endif
