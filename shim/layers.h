/*
 * layers.h - makes the files behind a VM's disks (shim/disks.h) before it
 * starts: EROFS images of layer directories, shared through a cache, and
 * private ones of directories that may change; new sparse ext4 images;
 * and a check that a flat multi-device EROFS disk mounts as one.
 *
 * Conversion runs mkfs.erofs (erofs-utils) on the directory, uncompressed
 * and keeping owners, modes, times and xattrs, so overlayfs whiteouts
 * (character devices 0/0) and opaque directories (trusted.overlay.opaque=y)
 * survive and the guest's overlay honours them. Reading trusted.* xattrs
 * needs CAP_SYS_ADMIN, which a shim has.
 *
 * The layer cache. A committed snapshot never changes, so one image per
 * layer serves every container. An image is CACHE/KEY.erofs with KEY =
 * "DEV-INODE-CTIME.NSEC-v1" of the layer directory: (device, inode) names
 * the directory while it exists, and its ctime tells a later directory
 * that reuses the inode number apart (creating it sets a new ctime).
 * Hashing the content instead would read the whole layer on every
 * Create, which is what the cache is there to avoid. The directory is
 * stat'ed again after a conversion: if it changed meanwhile, it was not
 * an immutable layer and the conversion fails. "v1" names the
 * conversion's options; changing them changes it. Images are written to
 * a temporary file, synced and renamed into place (readers never see a
 * partial image), under an exclusive flock of CACHE/KEY.lock, and the
 * cache is checked again once the lock is held: two shims converting the
 * same layer at once convert it once. Nothing here removes cached images
 * (a layer still in use by a running VM must stay).
 *
 * Blocking, single-threaded per call; safe across processes as above.
 * Functions return 0, or -1 with the problem in @err (@err_size bytes).
 */
#ifndef EROVM_SHIM_LAYERS_H
#define EROVM_SHIM_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shim/disks.h"

#define LAYERS_DEFAULT_CACHE "/var/lib/erovm/layers"

struct layer_tools {
	const char *cache_dir;	/* NULL: LAYERS_DEFAULT_CACHE */
	const char *mkfs_erofs;	/* NULL: "mkfs.erofs" from PATH */
	const char *mkfs_ext4;	/* NULL: "mkfs.ext4" from PATH */
};

/*
 * The cached EROFS image of layer directory @dir, converting it first if
 * the cache has none: its path goes to @image (@size bytes), and
 * *@converted says whether this call converted it.
 */
int layer_cache_get(const struct layer_tools *tools, const char *dir, char *image, size_t size,
		    bool *converted, char *err, size_t err_size);

/* Converts @dir into a new EROFS image at @image, replacing any file there. */
int layer_build_image(const struct layer_tools *tools, const char *dir, const char *image,
		      char *err, size_t err_size);

/*
 * Creates @path as a sparse ext4 image of @size bytes unless it exists
 * (then it is kept as it is: it holds a container's writes).
 */
int layer_create_ext4(const struct layer_tools *tools, const char *path, uint64_t size,
		      char *err, size_t err_size);

/*
 * Checks that the extents of @disk (whole files: an EROFS image, then
 * the blobs its device table lists, in order) form a flat multi-device
 * EROFS the guest mounts without device= options: as many device slots
 * as blobs, each blob whole blocks long and mapped (mapped_blkaddr) where
 * the concatenation puts it. A one-extent disk passes if it is EROFS.
 */
int layer_check_flat_erofs(const struct disk *disk, char *err, size_t err_size);

/*
 * Makes every disk of @set ready to attach, in order: DISK_LAYER gets its
 * cached image as extent 0, DISK_DIRECTORY its image built, DISK_NEW_EXT4
 * its image created (after checking @require_empty is empty), and a
 * read-only DISK_FILES disk of several extents is checked as a flat
 * EROFS. Errors name the disk's serial.
 */
int layers_prepare_disks(struct disk_set *set, const struct layer_tools *tools,
			 char *err, size_t err_size);

#endif
