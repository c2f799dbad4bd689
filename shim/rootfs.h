/*
 * rootfs.h - how a container's root filesystem reaches its VM, decided at
 * CreateTask from containerd's rootfs mount list (CreateTaskRequest.rootfs,
 * containerd.types.Mount) before anything is mounted: the bundle's rootfs
 * directory is not mounted yet then, and need never be on the host.
 *
 * rootfs_classify() is pure: it reads only its arguments (no file system
 * access), adds the disks the root needs to the VM's disk set
 * (shim/disks.h; shim/layers.h prepares them later) and writes the mount
 * plan guest-init runs to assemble the root (vmm/mount_plan.h), whose
 * last mount, named "rootfs" (ROOTFS_ROOT in the guest), is the root.
 * Plan mount i other than the root is named "rootfs.i".
 *
 * Layouts:
 *
 *   overlay snapshotter   one "overlay" mount with lowerdir=A:B... (top
 *                         layer first), upperdir=, workdir= and other
 *                         options (index=off, ...). Each lower directory
 *                         is a committed, immutable snapshot: a DISK_LAYER
 *                         disk (one EROFS image each, converted once and
 *                         shared). The writable layer is a sparse ext4
 *                         image in the bundle (ROOTFS_UPPER_IMAGE, size
 *                         from the options) holding upper/ and work/,
 *                         which the plan's mkdir directives create; the
 *                         host upperdir must be empty (checked when the
 *                         disk is prepared: its content would not reach
 *                         the VM, so a non-empty one is an error, never
 *                         silently dropped). Without upperdir and workdir
 *                         (a read-only view) the root is the overlay of
 *                         the layers, or the one layer itself.
 *                         One disk per layer, not one flat disk: the
 *                         guest cannot mount an EROFS image at an offset
 *                         inside a disk (no offset option, no loop device
 *                         in guest-init), so a concatenation of
 *                         independent images is unmountable; only a
 *                         multi-device EROFS (metadata plus blobs, the
 *                         EROFS snapshotter's fsmeta) mounts from one flat
 *                         disk, and Debian 12's mkfs.erofs cannot merge
 *                         layers into one. So at most ROOTFS_MAX_LAYERS.
 *   native snapshotter    one "bind" mount (rbind, ro or rw) of a
 *                         directory: a DISK_DIRECTORY (private image in
 *                         the bundle: an active snapshot may change),
 *                         under the same ext4 upper when rw.
 *   EROFS snapshotter     (containerd >= 2.1) a list of "mkfs/ext4"
 *                         (writable layer file to create with
 *                         X-containerd.mkfs.size; fs must be ext4),
 *                         "ext4" (an existing image file or a block
 *                         device), "erofs" (a layer file; device=BLOB
 *                         options add blobs: source and blobs become one
 *                         flat disk in that order, mounted without
 *                         device=), and a last "format/..." mount
 *                         (overlay or bind, mkdir/ optional) whose
 *                         X-containerd.mkdir.path options and templates
 *                         pass to the plan unchanged: plan mount i is
 *                         containerd's mount i, so "{{ mount N }}",
 *                         "{{ target N }}" and "{{ overlay A B }}" keep
 *                         their meaning (both expand as containerd's
 *                         core/mount/manager/format.go: overlay A B is
 *                         the mount points of A..B, either direction,
 *                         joined with ':'). "{{ source N }}" names a host
 *                         path the guest does not have: an error.
 *   block device          one "ext4" or "erofs" mount of a /dev/ path
 *                         (devmapper): attached and mounted as is.
 *
 * Anything else is an error naming the mount: "rootfs mount I (TYPE
 * SOURCE): PROBLEM". On any error the disk set is left as it was.
 */
#ifndef EROVM_SHIM_ROOTFS_H
#define EROVM_SHIM_ROOTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "shim/disks.h"
#include "vmm/mount_plan.h"

#define ROOTFS_DEFAULT_WRITABLE_SIZE (10ULL << 30)
/* The writable layer image of the overlay and native layouts, in the bundle. */
#define ROOTFS_UPPER_IMAGE "rootfs-upper.ext4"
/* The native layout's private image of its directory, in the bundle. */
#define ROOTFS_DIRECTORY_IMAGE "rootfs-directory.erofs"
/* The container's root in the guest: the plan's last mount. */
#define ROOTFS_ROOT MOUNT_PLAN_DEFAULT_DIR "/rootfs"
/* A plan holds the layers, the writable layer and the overlay. */
#define ROOTFS_MAX_LAYERS (MOUNT_PLAN_MAX_MOUNTS - 2)

/* One entry of the mount list, as containerd.types.Mount. */
struct rootfs_mount {
	const char *type;
	const char *source;
	const char *target;
	size_t option_count;
	const char *const *options;
};

struct rootfs_options {
	const char *bundle;		/* absolute: where writable images go */
	uint64_t writable_size;		/* 0: ROOTFS_DEFAULT_WRITABLE_SIZE */
};

enum rootfs_kind {
	ROOTFS_OVERLAY,
	ROOTFS_NATIVE,
	ROOTFS_EROFS,
	ROOTFS_BLOCK_DEVICE,
};

struct rootfs_layout {
	enum rootfs_kind kind;
	bool read_only;		/* no writable layer: the root is read-only */
	char *plan;		/* the mount plan, NUL-terminated */
	size_t first_disk;	/* its disks in the disk set */
	size_t disk_count;
};

/* "overlay", "native", "erofs" or "block-device". */
const char *rootfs_kind_name(enum rootfs_kind kind);

/*
 * Decides the layout of the @count mounts of @mounts (see above), adding
 * its disks to @disks and filling @layout. Returns 0, or -1 with @err.
 * Free @layout with rootfs_layout_free().
 */
int rootfs_classify(const struct rootfs_mount *mounts, size_t count,
		    const struct rootfs_options *options, struct disk_set *disks,
		    struct rootfs_layout *layout, char *err, size_t err_size);

void rootfs_layout_free(struct rootfs_layout *layout);

/*
 * @layout and the disk set it lives in as JSON, the record kept in the
 * bundle (shim/oci.h: the io.erovm.rootfs annotation): {"kind", "read_only",
 * "plan", "first_disk", "disk_count", "disks"}. NULL if out of memory.
 */
json_object *rootfs_layout_to_json(const struct rootfs_layout *layout,
				   const struct disk_set *disks);

/*
 * Reads back rootfs_layout_to_json()'s record into @layout and @disks
 * (initialised here), checking the plan parses and its disks exist.
 */
int rootfs_layout_from_json(json_object *json, struct rootfs_layout *layout,
			    struct disk_set *disks, char *err, size_t err_size);

#endif
