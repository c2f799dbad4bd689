/*
 * oci.h - the bundle's OCI runtime spec (config.json) on its way into the
 * VM: which of its mounts become disks, which are copied in, which the
 * guest makes itself; the spec guest-init hands to crun; the VM's size;
 * and the rootfs record a restarted shim reads back.
 *
 * oci_rewrite() maps each mount of the spec (in order):
 *
 *   proc, sysfs, devpts, tmpfs, mqueue, cgroup, cgroup2
 *                     kept: crun makes them inside the guest;
 *   ext4 of a host file or block device (nerdbox's block mounts)
 *                     a DISK_FILES volume disk, mounted by the plan at
 *                     /run/mnt/volume-N and bound from there (rbind, with
 *                     the mount's ro/rw and nosuid/nodev/noexec flags);
 *   read-only bind of a directory
 *                     a DISK_DIRECTORY volume disk (a private EROFS image
 *                     BUNDLE/volume-N.erofs, made before the VM starts),
 *                     mounted and bound the same way;
 *   bind of a regular file (resolv.conf, hosts, hostname)
 *                     copied in: its bytes travel with the spec (struct
 *                     oci_file; oci_files_to_json() gives them as
 *                     [{"path", "mode", "data": base64}], the form the
 *                     shim sends the guest), guest-init writes them under
 *                     OCI_FILES_DIR and the mount binds from there.
 *                     Writes to it stay in the VM. At most OCI_FILE_MAX
 *                     bytes each, OCI_FILES_TOTAL_MAX in all, so they fit
 *                     a ttrpc message (4 MiB) with room to spare;
 *   writable bind of a directory
 *                     an error naming the destination: the VM cannot
 *                     share a live host directory (use an ext4 volume);
 *   anything else     an error naming the destination and type.
 *
 * A bind is a mount of type "bind", or of no type (or "none") with a
 * bind or rbind option. root.path becomes the guest's root (ROOTFS_ROOT).
 *
 * The VM's size: vCPUs = ceil(linux.resources.cpu.quota / period)
 * (period 100000 us if unset) when the quota is positive, else
 * OCI_VM_DEFAULT_CPUS, at most OCI_VM_MAX_CPUS; memory = the memory limit
 * plus OCI_VM_MEMORY_OVERHEAD (guest kernel, guest-init, crun), rounded
 * up to a MiB, at least OCI_VM_MIN_MEMORY, or OCI_VM_DEFAULT_MEMORY
 * without a limit. Annotations override: OCI_CPUS_ANNOTATION (a count,
 * 1..OCI_VM_MAX_CPUS) and OCI_MEMORY_ANNOTATION (the guest's memory, in
 * MiB or with a K/M/G suffix as vmm-run --mem, OCI_VM_MIN_MEMORY ..
 * OCI_VM_MAX_MEMORY); a bad value is an error, never ignored.
 *
 * The spec is read, never trusted: missing or mistyped fields are errors
 * naming the field. Functions return 0, or -1 with @err (@err_size bytes).
 * Only oci_record_rootfs() writes (config.json, atomically); everything
 * else only reads the bundle and the mount sources.
 */
#ifndef EROVM_SHIM_OCI_H
#define EROVM_SHIM_OCI_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "shim/disks.h"
#include "shim/rootfs.h"

#define OCI_ROOTFS_ANNOTATION "io.erovm.rootfs"
#define OCI_CPUS_ANNOTATION "io.erovm.vm.cpus"
#define OCI_MEMORY_ANNOTATION "io.erovm.vm.memory"

#define OCI_FILES_DIR "/run/erovm/files"
#define OCI_FILE_MAX (1 << 20)
#define OCI_FILES_TOTAL_MAX (2 << 20)

#define OCI_VM_DEFAULT_CPUS 1
#define OCI_VM_MAX_CPUS 64
#define OCI_VM_DEFAULT_MEMORY (256ULL << 20)
#define OCI_VM_MEMORY_OVERHEAD (64ULL << 20)
#define OCI_VM_MIN_MEMORY (128ULL << 20)
#define OCI_VM_MAX_MEMORY (256ULL << 30)

/* A file copied into the guest. */
struct oci_file {
	char *guest_path;	/* OCI_FILES_DIR/N-BASENAME */
	char *destination;	/* where the container sees it */
	unsigned int mode;	/* permission bits */
	size_t size;
	unsigned char *data;
};

struct oci_vm_size {
	unsigned int cpus;
	uint64_t memory;	/* bytes */
};

/* What oci_rewrite() makes; free with oci_guest_free(). */
struct oci_guest {
	json_object *spec;	/* the spec crun gets in the guest */
	char *plan_lines;	/* mount plan lines of the volume disks ("" if none) */
	size_t file_count;
	struct oci_file *files;
	struct oci_vm_size vm;
};

/* Reads and parses BUNDLE/config.json into *@spec (a JSON object). */
int oci_read_spec(const char *bundle, json_object **spec, char *err, size_t err_size);

/*
 * Maps the mounts of @spec (not modified) as above, adding volume disks
 * to @disks (after the rootfs disks; image files go in @bundle), and
 * fills @out. On error @disks is left as it was.
 */
int oci_rewrite(json_object *spec, const char *bundle, struct disk_set *disks,
		struct oci_guest *out, char *err, size_t err_size);

void oci_guest_free(struct oci_guest *guest);

/* The VM size @spec asks for (see above). */
int oci_vm_size(json_object *spec, struct oci_vm_size *size, char *err, size_t err_size);

/* The copied files as [{"path", "mode", "data": base64}]; NULL if out of memory. */
json_object *oci_files_to_json(const struct oci_guest *guest);

/*
 * Writes BUNDLE/config.json as @spec plus the annotation
 * OCI_ROOTFS_ANNOTATION holding rootfs_layout_to_json(@layout, @disks) as
 * text; atomically (temporary file, fsync, rename), keeping its mode.
 */
int oci_record_rootfs(const char *bundle, json_object *spec, const struct rootfs_layout *layout,
		      const struct disk_set *disks, char *err, size_t err_size);

/* Reads the record oci_record_rootfs() left in @spec back. */
int oci_read_rootfs(json_object *spec, struct rootfs_layout *layout, struct disk_set *disks,
		    char *err, size_t err_size);

#endif
