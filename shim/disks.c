/*
 * disks.c - the disk allocator of one container VM; see shim/disks.h.
 */
#include "shim/disks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim/text.h"

static const char *const role_names[] = {
	[DISK_ROLE_ROOTFS] = "rootfs",
	[DISK_ROLE_VOLUME] = "volume",
};

static const char *const source_names[] = {
	[DISK_FILES] = "files",
	[DISK_NEW_EXT4] = "new-ext4",
	[DISK_LAYER] = "layer",
	[DISK_DIRECTORY] = "directory",
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void disk_set_init(struct disk_set *set)
{
	memset(set, 0, sizeof(*set));
}

static void free_disk(struct disk *disk)
{
	free(disk->directory);
	free(disk->require_empty);
	for (size_t i = 0; i < disk->extent_count; i++)
		free(disk->extents[i].path);
	free(disk->extents);
	memset(disk, 0, sizeof(*disk));
}

void disk_set_free(struct disk_set *set)
{
	for (size_t i = 0; i < set->count; i++)
		free_disk(&set->disks[i]);
	disk_set_init(set);
}

/* Returns what keeps @path from being a disk file path, or NULL. */
static const char *path_problem(const char *path)
{
	if (path[0] != '/')
		return "is not absolute";
	if (strpbrk(path, ":,@"))
		return "holds ':', ',' or '@', which vmm-run's --disk syntax cannot carry";
	return NULL;
}

/* Copies optional string @value into *@field; false when out of memory. */
static bool copy_string(char **field, const char *value)
{
	*field = value ? strdup(value) : NULL;
	return !value || *field;
}

static int check_spec(const struct disk_spec *spec, char *err, size_t err_size)
{
	bool wants_directory = spec->source == DISK_LAYER || spec->source == DISK_DIRECTORY;

	if ((unsigned int)spec->role >= ARRAY_LEN(role_names) ||
	    (unsigned int)spec->source >= ARRAY_LEN(source_names))
		return shim_error(err, err_size, "unknown disk role or source");
	if (wants_directory != (spec->directory != NULL))
		return shim_error(err, err_size, "a %s disk %s",
				 source_names[spec->source], wants_directory ? "needs a directory" : "takes no directory");
	if (wants_directory && spec->directory[0] != '/')
		return shim_error(err, err_size, "directory \"%s\" is not absolute", spec->directory);
	if ((spec->source == DISK_NEW_EXT4) != (spec->size != 0))
		return shim_error(err, err_size, "only a new ext4 disk, and each, has a size");
	if (spec->require_empty && spec->source != DISK_NEW_EXT4)
		return shim_error(err, err_size, "only a new ext4 disk requires an empty directory");
	if ((spec->source == DISK_LAYER || spec->source == DISK_DIRECTORY) && !spec->read_only)
		return shim_error(err, err_size, "an EROFS image disk is read-only");
	return 0;
}

struct disk *disk_set_add(struct disk_set *set, const struct disk_spec *spec,
			  char *err, size_t err_size)
{
	struct disk *disk;

	if (check_spec(spec, err, err_size) < 0)
		return NULL;
	if (set->count == DISKS_MAX) {
		shim_error(err, err_size, "a VM takes at most %d disks; %s disk %u would be one more",
			  DISKS_MAX, role_names[spec->role], set->next_index[spec->role]);
		return NULL;
	}
	if (spec->role == DISK_ROLE_ROOTFS && set->next_index[DISK_ROLE_VOLUME]) {
		shim_error(err, err_size, "rootfs disks come before volume disks");
		return NULL;
	}
	disk = &set->disks[set->count];
	memset(disk, 0, sizeof(*disk));
	disk->role = spec->role;
	disk->source = spec->source;
	disk->read_only = spec->read_only;
	disk->size = spec->size;
	/* "volume-63" fits DISK_SERIAL_MAX with room to spare. */
	snprintf(disk->serial, sizeof(disk->serial), "%s-%u", role_names[spec->role],
		 set->next_index[spec->role]);
	if (!copy_string(&disk->directory, spec->directory) ||
	    !copy_string(&disk->require_empty, spec->require_empty)) {
		free_disk(disk);
		shim_error(err, err_size, "out of memory");
		return NULL;
	}
	set->next_index[spec->role]++;
	set->count++;
	return disk;
}

int disk_add_extent(struct disk *disk, const char *path, uint64_t offset, uint64_t length,
		    char *err, size_t err_size)
{
	const char *problem = path_problem(path);
	struct disk_extent *extents;

	if (problem)
		return shim_error(err, err_size, "disk %s: file \"%s\" %s", disk->serial, path,
				 problem);
	if (disk->extent_count == DISK_EXTENTS_MAX)
		return shim_error(err, err_size, "disk %s: more than %d extents", disk->serial,
				 DISK_EXTENTS_MAX);
	if (length && offset > UINT64_MAX - length)
		return shim_error(err, err_size, "disk %s: extent %s@%" PRIu64 "+%" PRIu64
				 " ends past 2^64", disk->serial, path, offset, length);
	extents = realloc(disk->extents, (disk->extent_count + 1) * sizeof(*extents));
	if (!extents)
		return shim_error(err, err_size, "out of memory");
	disk->extents = extents;
	extents[disk->extent_count] = (struct disk_extent){
		.path = strdup(path), .offset = offset, .length = length,
	};
	if (!extents[disk->extent_count].path)
		return shim_error(err, err_size, "out of memory");
	disk->extent_count++;
	return 0;
}

void disk_set_truncate(struct disk_set *set, size_t count)
{
	while (set->count > count) {
		struct disk *disk = &set->disks[--set->count];

		set->next_index[disk->role]--;
		free_disk(disk);
	}
}

struct disk *disk_set_find(struct disk_set *set, const char *serial)
{
	for (size_t i = 0; i < set->count; i++)
		if (!strcmp(set->disks[i].serial, serial))
			return &set->disks[i];
	return NULL;
}

int disk_format_arg(const struct disk *disk, char *buf, size_t size)
{
	const struct disk_extent *only = &disk->extents[0];
	size_t len = 0;
	int n;

	if (!disk->extent_count)
		return -EINVAL;
	if (disk->extent_count == 1 && !only->offset && !only->length) {
		n = snprintf(buf, size, "%s", only->path);
	} else {
		n = snprintf(buf, size, "extents=");
		for (size_t i = 0; n >= 0 && (size_t)n < size - len && i < disk->extent_count; i++) {
			const struct disk_extent *e = &disk->extents[i];

			len += (size_t)n;
			if (e->length)
				n = snprintf(buf + len, size - len, "%s%s@%" PRIu64 "+%" PRIu64,
					     i ? ":" : "", e->path, e->offset, e->length);
			else if (e->offset)
				n = snprintf(buf + len, size - len, "%s%s@%" PRIu64, i ? ":" : "",
					     e->path, e->offset);
			else
				n = snprintf(buf + len, size - len, "%s%s", i ? ":" : "", e->path);
		}
	}
	if (n < 0 || (size_t)n >= size - len)
		return -ENOSPC;
	len += (size_t)n;
	n = snprintf(buf + len, size - len, "%s,serial=%s", disk->read_only ? ",ro" : "",
		     disk->serial);
	if (n < 0 || (size_t)n >= size - len)
		return -ENOSPC;
	return (int)(len + (size_t)n);
}

/* Adds @value to @obj under @key, taking it; false if out of memory. */
static bool add_value(json_object *obj, const char *key, json_object *value)
{
	if (!value)
		return false;
	if (json_object_object_add(obj, key, value)) {
		json_object_put(value);
		return false;
	}
	return true;
}

/* Adds string @value, if not NULL. */
static bool add_string(json_object *obj, const char *key, const char *value)
{
	return !value || add_value(obj, key, json_object_new_string(value));
}

static bool add_int(json_object *obj, const char *key, uint64_t value)
{
	return add_value(obj, key, json_object_new_int64((int64_t)value));
}

static json_object *disk_to_json(const struct disk *disk)
{
	json_object *obj = json_object_new_object(), *extents = json_object_new_array();
	bool ok;

	if (!obj) {
		json_object_put(extents);
		return NULL;
	}
	if (!add_value(obj, "extents", extents)) {
		json_object_put(obj);
		return NULL;
	}
	ok = add_string(obj, "serial", disk->serial) &&
	     add_string(obj, "role", role_names[disk->role]) &&
	     add_string(obj, "source", source_names[disk->source]) &&
	     add_value(obj, "read_only", json_object_new_boolean(disk->read_only)) &&
	     add_string(obj, "directory", disk->directory) &&
	     (!disk->size || add_int(obj, "size", disk->size)) &&
	     add_string(obj, "require_empty", disk->require_empty);
	for (size_t i = 0; ok && i < disk->extent_count; i++) {
		json_object *e = json_object_new_object();

		if (!e || json_object_array_add(extents, e)) {
			json_object_put(e);
			ok = false;
			break;
		}
		ok = add_string(e, "path", disk->extents[i].path) &&
		     add_int(e, "offset", disk->extents[i].offset) &&
		     add_int(e, "length", disk->extents[i].length);
	}
	if (ok)
		return obj;
	json_object_put(obj);
	return NULL;
}

json_object *disk_set_to_json(const struct disk_set *set)
{
	json_object *array = json_object_new_array();

	for (size_t i = 0; array && i < set->count; i++) {
		json_object *disk = disk_to_json(&set->disks[i]);

		if (!disk || json_object_array_add(array, disk)) {
			json_object_put(disk);
			json_object_put(array);
			return NULL;
		}
	}
	return array;
}

/* Reads optional string @key of @obj into *@value (NULL when absent). */
static int get_string(json_object *obj, const char *key, bool required, const char **value,
		      char *err, size_t err_size)
{
	json_object *field;

	*value = NULL;
	if (!json_object_object_get_ex(obj, key, &field))
		return required ? shim_error(err, err_size, "missing \"%s\"", key) : 0;
	if (!json_object_is_type(field, json_type_string))
		return shim_error(err, err_size, "\"%s\" is not a string", key);
	*value = json_object_get_string(field);
	return 0;
}

static int get_uint(json_object *obj, const char *key, uint64_t *value, char *err, size_t err_size)
{
	json_object *field;
	int64_t number;

	*value = 0;
	if (!json_object_object_get_ex(obj, key, &field))
		return 0;
	if (!json_object_is_type(field, json_type_int))
		return shim_error(err, err_size, "\"%s\" is not an integer", key);
	number = json_object_get_int64(field);
	if (number < 0)
		return shim_error(err, err_size, "\"%s\" is negative", key);
	*value = (uint64_t)number;
	return 0;
}

static int lookup_name(const char *const *names, size_t count, const char *what,
		       const char *name, int *index, char *err, size_t err_size)
{
	for (size_t i = 0; i < count; i++) {
		if (!strcmp(names[i], name)) {
			*index = (int)i;
			return 0;
		}
	}
	return shim_error(err, err_size, "unknown %s \"%s\"", what, name);
}

static int disk_from_json(json_object *obj, struct disk_set *set, char *err, size_t err_size)
{
	const char *serial, *role, *source, *path;
	struct disk_spec spec = { 0 };
	json_object *read_only, *extents;
	int role_index = 0, source_index = 0;
	struct disk *disk;

	if (!json_object_is_type(obj, json_type_object))
		return shim_error(err, err_size, "not an object");
	if (get_string(obj, "serial", true, &serial, err, err_size) < 0 ||
	    get_string(obj, "role", true, &role, err, err_size) < 0 ||
	    get_string(obj, "source", true, &source, err, err_size) < 0 ||
	    get_string(obj, "directory", false, &spec.directory, err, err_size) < 0 ||
	    get_string(obj, "require_empty", false, &spec.require_empty, err, err_size) < 0 ||
	    get_uint(obj, "size", &spec.size, err, err_size) < 0 ||
	    lookup_name(role_names, ARRAY_LEN(role_names), "role", role, &role_index,
			err, err_size) < 0 ||
	    lookup_name(source_names, ARRAY_LEN(source_names), "source", source, &source_index,
			err, err_size) < 0)
		return -1;
	if (!json_object_object_get_ex(obj, "read_only", &read_only) ||
	    !json_object_is_type(read_only, json_type_boolean))
		return shim_error(err, err_size, "\"read_only\" is missing or not a boolean");
	if (!json_object_object_get_ex(obj, "extents", &extents) ||
	    !json_object_is_type(extents, json_type_array))
		return shim_error(err, err_size, "\"extents\" is missing or not an array");
	spec.role = (enum disk_role)role_index;
	spec.source = (enum disk_source)source_index;
	spec.read_only = json_object_get_boolean(read_only);
	disk = disk_set_add(set, &spec, err, err_size);
	if (!disk)
		return -1;
	if (strcmp(disk->serial, serial))
		return shim_error(err, err_size, "serial \"%s\" out of order (expected \"%s\")",
				 serial, disk->serial);
	for (size_t i = 0; i < json_object_array_length(extents); i++) {
		json_object *e = json_object_array_get_idx(extents, i);
		uint64_t offset, length;

		if (!json_object_is_type(e, json_type_object))
			return shim_error(err, err_size, "extent %zu is not an object", i);
		if (get_string(e, "path", true, &path, err, err_size) < 0 ||
		    get_uint(e, "offset", &offset, err, err_size) < 0 ||
		    get_uint(e, "length", &length, err, err_size) < 0 ||
		    disk_add_extent(disk, path, offset, length, err, err_size) < 0)
			return -1;
	}
	return 0;
}

int disk_set_from_json(json_object *json, struct disk_set *set, char *err, size_t err_size)
{
	char msg[512];

	disk_set_init(set);
	if (!json_object_is_type(json, json_type_array))
		return shim_error(err, err_size, "disks: not an array");
	for (size_t i = 0; i < json_object_array_length(json); i++) {
		if (disk_from_json(json_object_array_get_idx(json, i), set, msg, sizeof(msg)) < 0) {
			disk_set_free(set);
			return shim_error(err, err_size, "disks[%zu]: %s", i, msg);
		}
	}
	return 0;
}
