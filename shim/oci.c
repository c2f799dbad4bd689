/*
 * oci.c - the bundle's config.json into the VM; see shim/oci.h.
 */
#include "shim/oci.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim/text.h"
#include "vmm/mount_plan.h"

#define MESSAGE_SIZE 768
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define DEFAULT_CPU_PERIOD 100000
#define MIB (1ULL << 20)

/* Mount types crun makes inside the guest as they are. */
static const char *const guest_made_types[] = {
	"proc", "sysfs", "devpts", "tmpfs", "mqueue", "cgroup", "cgroup2",
};

/* Flags of a volume's mount that its bind in the container keeps. */
static const char *const bind_flags[] = { "ro", "rw", "nosuid", "nodev", "noexec" };

static bool in_list(const char *const *list, size_t count, const char *s)
{
	for (size_t i = 0; i < count; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}

int oci_read_spec(const char *bundle, json_object **spec, char *err, size_t err_size)
{
	char path[PATH_MAX];

	*spec = NULL;
	if ((size_t)snprintf(path, sizeof(path), "%s/config.json", bundle) >= sizeof(path))
		return shim_error(err, err_size, "bundle path %s is too long", bundle);
	*spec = json_object_from_file(path);
	if (!*spec)
		return shim_error(err, err_size, "%s: %s", path, json_util_get_last_err());
	if (!json_object_is_type(*spec, json_type_object)) {
		json_object_put(*spec);
		*spec = NULL;
		return shim_error(err, err_size, "%s: not a JSON object", path);
	}
	return 0;
}

/*
 * Finds @key of object @obj with type @type: 0 with *@out NULL when
 * absent (or JSON null), -1 when of another type.
 */
static int get_field(json_object *obj, const char *where, const char *key, json_type type,
		     json_object **out, char *err, size_t err_size)
{
	*out = NULL;
	if (!obj || !json_object_object_get_ex(obj, key, out) || !*out) {
		*out = NULL;
		return 0;
	}
	if (!json_object_is_type(*out, type)) {
		*out = NULL;
		return shim_error(err, err_size, "config.json: %s%s is not a %s", where, key,
				 json_type_to_name(type));
	}
	return 0;
}

/* Annotation @key of @spec, or NULL; -1 if annotations are malformed. */
static int get_annotation(json_object *spec, const char *key, const char **value,
			  char *err, size_t err_size)
{
	json_object *annotations, *field;

	*value = NULL;
	if (get_field(spec, "", "annotations", json_type_object, &annotations, err, err_size) < 0 ||
	    get_field(annotations, "annotations.", key, json_type_string, &field, err, err_size) < 0)
		return -1;
	*value = field ? json_object_get_string(field) : NULL;
	return 0;
}

/* vmm-run --mem's syntax: decimal MiB, or with a K, M or G suffix. */
static bool parse_memory(const char *text, uint64_t *bytes)
{
	unsigned int shift = 20;
	unsigned long long value;
	char *end;

	if (*text < '0' || *text > '9')
		return false;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno)
		return false;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: return false;
	}
	if (*end || value > (UINT64_MAX >> shift))
		return false;
	*bytes = (uint64_t)value << shift;
	return true;
}

int oci_vm_size(json_object *spec, struct oci_vm_size *size, char *err, size_t err_size)
{
	json_object *linux_obj, *resources, *cpu, *memory, *quota, *period, *limit;
	const char *cpus_note, *memory_note;

	size->cpus = OCI_VM_DEFAULT_CPUS;
	size->memory = OCI_VM_DEFAULT_MEMORY;
	if (get_field(spec, "", "linux", json_type_object, &linux_obj, err, err_size) < 0 ||
	    get_field(linux_obj, "linux.", "resources", json_type_object, &resources,
		      err, err_size) < 0 ||
	    get_field(resources, "linux.resources.", "cpu", json_type_object, &cpu,
		      err, err_size) < 0 ||
	    get_field(resources, "linux.resources.", "memory", json_type_object, &memory,
		      err, err_size) < 0 ||
	    get_field(cpu, "linux.resources.cpu.", "quota", json_type_int, &quota,
		      err, err_size) < 0 ||
	    get_field(cpu, "linux.resources.cpu.", "period", json_type_int, &period,
		      err, err_size) < 0 ||
	    get_field(memory, "linux.resources.memory.", "limit", json_type_int, &limit,
		      err, err_size) < 0 ||
	    get_annotation(spec, OCI_CPUS_ANNOTATION, &cpus_note, err, err_size) < 0 ||
	    get_annotation(spec, OCI_MEMORY_ANNOTATION, &memory_note, err, err_size) < 0)
		return -1;

	if (quota && json_object_get_int64(quota) > 0) {
		int64_t q = json_object_get_int64(quota);
		int64_t p = period ? json_object_get_int64(period) : DEFAULT_CPU_PERIOD;
		int64_t cpus;

		if (p <= 0)
			return shim_error(err, err_size, "config.json: linux.resources.cpu.period "
					 "%lld is not positive", (long long)p);
		cpus = q / p + (q % p != 0);
		size->cpus = cpus > OCI_VM_MAX_CPUS ? OCI_VM_MAX_CPUS : (unsigned int)cpus;
	}
	if (limit && json_object_get_int64(limit) > 0) {
		uint64_t bytes = (uint64_t)json_object_get_int64(limit);

		if (bytes > OCI_VM_MAX_MEMORY - OCI_VM_MEMORY_OVERHEAD)
			return shim_error(err, err_size, "config.json: memory limit %llu is more "
					 "than a VM takes (%llu MiB)", (unsigned long long)bytes,
					 (unsigned long long)(OCI_VM_MAX_MEMORY / MIB));
		bytes += OCI_VM_MEMORY_OVERHEAD;
		bytes = (bytes + MIB - 1) / MIB * MIB;
		size->memory = bytes < OCI_VM_MIN_MEMORY ? OCI_VM_MIN_MEMORY : bytes;
	}
	if (cpus_note) {
		char *end;
		unsigned long cpus;

		errno = 0;
		cpus = strtoul(cpus_note, &end, 10);
		if (*cpus_note < '0' || *cpus_note > '9' || errno || *end || cpus < 1 ||
		    cpus > OCI_VM_MAX_CPUS)
			return shim_error(err, err_size, "annotation %s=\"%s\": not a vCPU count "
					 "1-%d", OCI_CPUS_ANNOTATION, cpus_note, OCI_VM_MAX_CPUS);
		size->cpus = (unsigned int)cpus;
	}
	if (memory_note) {
		uint64_t bytes;

		if (!parse_memory(memory_note, &bytes) || bytes < OCI_VM_MIN_MEMORY ||
		    bytes > OCI_VM_MAX_MEMORY)
			return shim_error(err, err_size, "annotation %s=\"%s\": not a memory size "
					 "%llu MiB-%llu GiB (MiB, or a K/M/G suffix)",
					 OCI_MEMORY_ANNOTATION, memory_note,
					 (unsigned long long)(OCI_VM_MIN_MEMORY / MIB),
					 (unsigned long long)(OCI_VM_MAX_MEMORY >> 30));
		size->memory = bytes;
	}
	return 0;
}

/* One mount of the spec, read. */
struct spec_mount {
	size_t index;
	const char *destination, *type, *source;
	json_object *options;	/* array of strings, or NULL */
};

struct rewrite {
	const char *bundle;
	struct disk_set *disks;
	struct oci_guest *out;
	size_t files_total;
	struct shim_text plan;
	char *err;
	size_t err_size;
};

static int mount_error(struct rewrite *r, const struct spec_mount *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int mount_error(struct rewrite *r, const struct spec_mount *m, const char *fmt, ...)
{
	char msg[MESSAGE_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return shim_error(r->err, r->err_size, "config.json: mount %zu (%s): %s", m->index,
			 m->destination ? m->destination : "no destination", msg);
}

static size_t option_count(const struct spec_mount *m)
{
	return m->options ? json_object_array_length(m->options) : 0;
}

static const char *option_at(const struct spec_mount *m, size_t i)
{
	return json_object_get_string(json_object_array_get_idx(m->options, i));
}

static bool has_option(const struct spec_mount *m, const char *option)
{
	for (size_t i = 0; i < option_count(m); i++)
		if (!strcmp(option_at(m, i), option))
			return true;
	return false;
}

/* The last of "ro" and "rw" counts, as for mount(8). */
static bool is_read_only(const struct spec_mount *m)
{
	bool read_only = false;

	for (size_t i = 0; i < option_count(m); i++) {
		if (!strcmp(option_at(m, i), "ro"))
			read_only = true;
		else if (!strcmp(option_at(m, i), "rw"))
			read_only = false;
	}
	return read_only;
}

static int read_mount(struct rewrite *r, json_object *obj, size_t index, struct spec_mount *m)
{
	char where[64];
	json_object *field;

	memset(m, 0, sizeof(*m));
	m->index = index;
	snprintf(where, sizeof(where), "mounts[%zu].", index);
	if (!json_object_is_type(obj, json_type_object))
		return shim_error(r->err, r->err_size, "config.json: mounts[%zu] is not an object",
				 index);
	if (get_field(obj, where, "destination", json_type_string, &field, r->err,
		      r->err_size) < 0)
		return -1;
	if (!field || json_object_get_string(field)[0] != '/')
		return shim_error(r->err, r->err_size, "config.json: %sdestination is missing or "
				 "not absolute", where);
	m->destination = json_object_get_string(field);
	if (get_field(obj, where, "type", json_type_string, &field, r->err, r->err_size) < 0)
		return -1;
	m->type = field ? json_object_get_string(field) : "";
	if (get_field(obj, where, "source", json_type_string, &field, r->err, r->err_size) < 0)
		return -1;
	m->source = field ? json_object_get_string(field) : "";
	if (get_field(obj, where, "options", json_type_array, &m->options, r->err,
		      r->err_size) < 0)
		return -1;
	for (size_t i = 0; i < option_count(m); i++)
		if (!json_object_is_type(json_object_array_get_idx(m->options, i), json_type_string))
			return shim_error(r->err, r->err_size, "config.json: %soptions[%zu] is not "
					 "a string", where, i);
	return 0;
}

/* {destination, type "bind", source, options} for the container. */
static json_object *bind_mount(const char *destination, const char *source, json_object *options)
{
	json_object *obj = json_object_new_object();

	if (!obj)
		return NULL;
	if (json_object_object_add(obj, "destination", json_object_new_string(destination)) ||
	    json_object_object_add(obj, "type", json_object_new_string("bind")) ||
	    json_object_object_add(obj, "source", json_object_new_string(source)) ||
	    json_object_object_add(obj, "options", options)) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

/* rbind plus the volume's kept flags. */
static json_object *volume_bind_options(const struct spec_mount *m, bool read_only)
{
	json_object *options = json_object_new_array();

	if (!options)
		return NULL;
	json_object_array_add(options, json_object_new_string("rbind"));
	json_object_array_add(options, json_object_new_string(read_only ? "ro" : "rw"));
	for (size_t i = 0; i < option_count(m); i++) {
		const char *o = option_at(m, i);

		if (in_list(bind_flags, ARRAY_LEN(bind_flags), o) && strcmp(o, "ro") && strcmp(o, "rw"))
			json_object_array_add(options, json_object_new_string(o));
	}
	return options;
}

/* Appends a plan line mounting @disk at /run/mnt/SERIAL. */
static int plan_volume(struct rewrite *r, const struct spec_mount *m, const struct disk *disk,
		       const char *fstype, bool pass_options)
{
	char encoded[MOUNT_PLAN_MAX_VALUE];

	shim_text_puts(&r->plan, "mount type=");
	shim_text_puts(&r->plan, fstype);
	shim_text_puts(&r->plan, " source=serial:");
	shim_text_puts(&r->plan, disk->serial);
	shim_text_puts(&r->plan, " name=");
	shim_text_puts(&r->plan, disk->serial);
	shim_text_puts(&r->plan, " options=");
	shim_text_puts(&r->plan, disk->read_only ? "ro" : "rw");
	for (size_t i = 0; pass_options && i < option_count(m); i++) {
		const char *o = option_at(m, i);

		if (!strcmp(o, "ro") || !strcmp(o, "rw") || !strcmp(o, "bind") ||
		    !strcmp(o, "rbind") || !strcmp(o, "loop") || !strncmp(o, "X-containerd.", 13))
			continue;
		if (mount_plan_encode(o, true, encoded, sizeof(encoded)) < 0)
			return mount_error(r, m, "option \"%.64s...\" is too long", o);
		shim_text_puts(&r->plan, ",");
		shim_text_puts(&r->plan, encoded);
	}
	shim_text_puts(&r->plan, "\n");
	return 0;
}

/* A volume disk's mount in the container: a bind from its guest mount point. */
static json_object *volume_mount(const struct spec_mount *m, const struct disk *disk)
{
	char guest_path[64];
	json_object *options = volume_bind_options(m, disk->read_only);

	if (!options)
		return NULL;
	snprintf(guest_path, sizeof(guest_path), MOUNT_PLAN_DEFAULT_DIR "/%s", disk->serial);
	return bind_mount(m->destination, guest_path, options);
}

static json_object *ext4_volume(struct rewrite *r, const struct spec_mount *m)
{
	struct disk_spec spec = {
		.role = DISK_ROLE_VOLUME, .source = DISK_FILES, .read_only = is_read_only(m),
	};
	char msg[MESSAGE_SIZE];
	struct disk *disk;
	struct stat st;

	if (stat(m->source, &st) < 0) {
		mount_error(r, m, "ext4 source %s: %s", m->source, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		mount_error(r, m, "ext4 source %s is not an image file or a block device", m->source);
		return NULL;
	}
	disk = disk_set_add(r->disks, &spec, msg, sizeof(msg));
	if (!disk || disk_add_extent(disk, m->source, 0, 0, msg, sizeof(msg)) < 0) {
		mount_error(r, m, "%s", msg);
		return NULL;
	}
	if (plan_volume(r, m, disk, "ext4", true) < 0)
		return NULL;
	return volume_mount(m, disk);
}

static json_object *directory_volume(struct rewrite *r, const struct spec_mount *m)
{
	struct disk_spec spec = {
		.role = DISK_ROLE_VOLUME, .source = DISK_DIRECTORY, .read_only = true,
		.directory = m->source,
	};
	char msg[MESSAGE_SIZE], image[PATH_MAX];
	struct disk *disk;

	if (!is_read_only(m)) {
		mount_error(r, m, "a writable bind of directory %s cannot be shared with a VM: "
			    "bind it read-only, or use an ext4 image volume", m->source);
		return NULL;
	}
	disk = disk_set_add(r->disks, &spec, msg, sizeof(msg));
	if (!disk) {
		mount_error(r, m, "%s", msg);
		return NULL;
	}
	if ((size_t)snprintf(image, sizeof(image), "%s/%s.erofs", r->bundle, disk->serial) >=
	    sizeof(image) || disk_add_extent(disk, image, 0, 0, msg, sizeof(msg)) < 0) {
		mount_error(r, m, "image %s: %s", image, msg);
		return NULL;
	}
	if (plan_volume(r, m, disk, "erofs", false) < 0)
		return NULL;
	return volume_mount(m, disk);
}

static int read_whole(int fd, unsigned char *buf, size_t size)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static json_object *copied_file(struct rewrite *r, const struct spec_mount *m,
				const struct stat *st)
{
	struct oci_guest *out = r->out;
	struct oci_file *files, *file;
	const char *base = strrchr(m->destination, '/') + 1;
	char guest_path[PATH_MAX];
	size_t len;
	int fd;

	if ((uint64_t)st->st_size > OCI_FILE_MAX ||
	    (uint64_t)st->st_size > OCI_FILES_TOTAL_MAX - r->files_total) {
		mount_error(r, m, "file %s is %lld bytes; files are copied in, up to %d bytes "
			    "each and %d in all", m->source, (long long)st->st_size,
			    OCI_FILE_MAX, OCI_FILES_TOTAL_MAX);
		return NULL;
	}
	len = (size_t)snprintf(guest_path, sizeof(guest_path), OCI_FILES_DIR "/%zu-%s",
			       out->file_count, *base ? base : "file");
	/* Only plain name bytes in the guest's own path. */
	for (size_t i = strlen(OCI_FILES_DIR) + 1; i < len; i++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-",
			    guest_path[i]))
			guest_path[i] = '_';
	files = realloc(out->files, (out->file_count + 1) * sizeof(*files));
	if (!files) {
		shim_error(r->err, r->err_size, "out of memory");
		return NULL;
	}
	out->files = files;
	file = &files[out->file_count];
	*file = (struct oci_file){
		.guest_path = strdup(guest_path), .destination = strdup(m->destination),
		.mode = st->st_mode & 07777, .size = (size_t)st->st_size,
		.data = malloc(st->st_size ? (size_t)st->st_size : 1),
	};
	out->file_count++;
	if (!file->guest_path || !file->destination || !file->data) {
		shim_error(r->err, r->err_size, "out of memory");
		return NULL;
	}
	fd = open(m->source, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read_whole(fd, file->data, file->size) < 0) {
		mount_error(r, m, "cannot read %s: %s", m->source,
			    fd < 0 ? strerror(errno) : "short read (did it change?)");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	close(fd);
	r->files_total += file->size;
	return bind_mount(m->destination, guest_path,
			  m->options ? json_object_get(m->options) : json_object_new_array());
}

static bool is_bind(const struct spec_mount *m)
{
	return !strcmp(m->type, "bind") ||
	       ((!m->type[0] || !strcmp(m->type, "none")) &&
		(has_option(m, "bind") || has_option(m, "rbind")));
}

/* The container's mount for spec mount @m, or NULL with the error set. */
static json_object *map_mount(struct rewrite *r, json_object *obj, const struct spec_mount *m)
{
	struct stat st;

	if (in_list(guest_made_types, ARRAY_LEN(guest_made_types), m->type))
		return json_object_get(obj);
	if (!strcmp(m->type, "ext4"))
		return ext4_volume(r, m);
	if (!is_bind(m)) {
		mount_error(r, m, "type \"%s\" is not supported in a VM (ext4 volumes, binds, "
			    "and proc, sysfs, devpts, tmpfs, mqueue, cgroup are)", m->type);
		return NULL;
	}
	if (m->source[0] != '/') {
		mount_error(r, m, "bind source \"%s\" is not an absolute path", m->source);
		return NULL;
	}
	if (stat(m->source, &st) < 0) {
		mount_error(r, m, "bind source %s: %s", m->source, strerror(errno));
		return NULL;
	}
	if (S_ISDIR(st.st_mode))
		return directory_volume(r, m);
	if (S_ISREG(st.st_mode))
		return copied_file(r, m, &st);
	mount_error(r, m, "bind source %s is neither a directory nor a regular file", m->source);
	return NULL;
}

static int rewrite_mounts(struct rewrite *r, json_object *spec)
{
	json_object *mounts, *new_mounts;

	if (get_field(spec, "", "mounts", json_type_array, &mounts, r->err, r->err_size) < 0)
		return -1;
	new_mounts = json_object_new_array();
	if (!new_mounts || json_object_object_add(r->out->spec, "mounts", new_mounts)) {
		json_object_put(new_mounts);
		return shim_error(r->err, r->err_size, "out of memory");
	}
	for (size_t i = 0; mounts && i < json_object_array_length(mounts); i++) {
		json_object *obj = json_object_array_get_idx(mounts, i), *mapped;
		struct spec_mount m;

		if (read_mount(r, obj, i, &m) < 0)
			return -1;
		mapped = map_mount(r, obj, &m);
		if (!mapped)
			return -1;
		if (json_object_array_add(new_mounts, mapped)) {
			json_object_put(mapped);
			return shim_error(r->err, r->err_size, "out of memory");
		}
	}
	if (r->plan.out_of_memory)
		return shim_error(r->err, r->err_size, "out of memory");
	return 0;
}

static int rewrite_root(struct rewrite *r)
{
	json_object *root, *path = json_object_new_string(ROOTFS_ROOT);

	if (get_field(r->out->spec, "", "root", json_type_object, &root, r->err,
		      r->err_size) < 0) {
		json_object_put(path);
		return -1;
	}
	if (!root) {
		root = json_object_new_object();
		if (!root || json_object_object_add(r->out->spec, "root", root)) {
			json_object_put(root);
			json_object_put(path);
			return shim_error(r->err, r->err_size, "out of memory");
		}
	}
	if (!path || json_object_object_add(root, "path", path)) {
		json_object_put(path);
		return shim_error(r->err, r->err_size, "out of memory");
	}
	return 0;
}

void oci_guest_free(struct oci_guest *guest)
{
	json_object_put(guest->spec);
	free(guest->plan_lines);
	for (size_t i = 0; i < guest->file_count; i++) {
		free(guest->files[i].guest_path);
		free(guest->files[i].destination);
		free(guest->files[i].data);
	}
	free(guest->files);
	memset(guest, 0, sizeof(*guest));
}

int oci_rewrite(json_object *spec, const char *bundle, struct disk_set *disks,
		struct oci_guest *out, char *err, size_t err_size)
{
	struct rewrite r = {
		.bundle = bundle, .disks = disks, .out = out, .err = err, .err_size = err_size,
	};
	size_t first_disk = disks->count;

	memset(out, 0, sizeof(*out));
	if (!json_object_is_type(spec, json_type_object))
		return shim_error(err, err_size, "config.json: not an object");
	shim_text_puts(&r.plan, "");
	if (json_object_deep_copy(spec, &out->spec, NULL) < 0) {
		free(r.plan.data);
		return shim_error(err, err_size, "out of memory");
	}
	if (oci_vm_size(spec, &out->vm, err, err_size) < 0 || rewrite_root(&r) < 0 ||
	    rewrite_mounts(&r, spec) < 0) {
		free(r.plan.data);
		oci_guest_free(out);
		disk_set_truncate(disks, first_disk);
		return -1;
	}
	out->plan_lines = r.plan.data;
	return 0;
}

static char *base64(const unsigned char *data, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t chunk = (uint32_t)data[i] << 16;

		if (i + 1 < len)
			chunk |= (uint32_t)data[i + 1] << 8;
		if (i + 2 < len)
			chunk |= data[i + 2];
		*p++ = alphabet[chunk >> 18 & 63];
		*p++ = alphabet[chunk >> 12 & 63];
		*p++ = i + 1 < len ? alphabet[chunk >> 6 & 63] : '=';
		*p++ = i + 2 < len ? alphabet[chunk & 63] : '=';
	}
	*p = '\0';
	return out;
}

json_object *oci_files_to_json(const struct oci_guest *guest)
{
	json_object *array = json_object_new_array();

	for (size_t i = 0; array && i < guest->file_count; i++) {
		const struct oci_file *f = &guest->files[i];
		json_object *obj = json_object_new_object();
		char *data = base64(f->data, f->size);
		bool ok = obj && data && !json_object_array_add(array, obj);

		if (!ok)
			json_object_put(obj);
		ok = ok && !json_object_object_add(obj, "path", json_object_new_string(f->guest_path)) &&
		     !json_object_object_add(obj, "mode", json_object_new_int((int)f->mode)) &&
		     !json_object_object_add(obj, "data", json_object_new_string(data));
		free(data);
		if (!ok) {
			json_object_put(array);
			return NULL;
		}
	}
	return array;
}

int oci_record_rootfs(const char *bundle, json_object *spec, const struct rootfs_layout *layout,
		      const struct disk_set *disks, char *err, size_t err_size)
{
	json_object *copy = NULL, *record = NULL, *annotations;
	char path[PATH_MAX], tmp[PATH_MAX];
	mode_t mode = 0644;
	struct stat st;
	int rc = -1, fd = -1;
	const char *text;

	if ((size_t)snprintf(path, sizeof(path), "%s/config.json", bundle) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.config.json.erovm", bundle) >= sizeof(tmp))
		return shim_error(err, err_size, "bundle path %s is too long", bundle);
	if (stat(path, &st) == 0)
		mode = st.st_mode & 0777;
	if (get_field(spec, "", "annotations", json_type_object, &annotations, err, err_size) < 0)
		return -1;
	record = rootfs_layout_to_json(layout, disks);
	text = record ? json_object_to_json_string_ext(record, JSON_C_TO_STRING_PLAIN) : NULL;
	if (!text || json_object_deep_copy(spec, &copy, NULL) < 0) {
		shim_error(err, err_size, "out of memory");
		goto out;
	}
	if (!json_object_object_get_ex(copy, "annotations", &annotations) || !annotations) {
		annotations = json_object_new_object();
		if (!annotations || json_object_object_add(copy, "annotations", annotations)) {
			json_object_put(annotations);
			shim_error(err, err_size, "out of memory");
			goto out;
		}
	}
	if (json_object_object_add(annotations, OCI_ROOTFS_ANNOTATION,
				   json_object_new_string(text))) {
		shim_error(err, err_size, "out of memory");
		goto out;
	}
	text = json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		shim_error(err, err_size, "create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode) < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fsync(fd) < 0) {
		shim_error(err, err_size, "write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, path) < 0) {
		shim_error(err, err_size, "rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0 && fd >= 0)
		unlink(tmp);
	json_object_put(copy);
	json_object_put(record);
	return rc;
}

int oci_read_rootfs(json_object *spec, struct rootfs_layout *layout, struct disk_set *disks,
		    char *err, size_t err_size)
{
	const char *text;
	json_object *record;
	enum json_tokener_error parse_error;
	int rc;

	if (get_annotation(spec, OCI_ROOTFS_ANNOTATION, &text, err, err_size) < 0)
		return -1;
	if (!text)
		return shim_error(err, err_size, "config.json has no %s annotation",
				 OCI_ROOTFS_ANNOTATION);
	record = json_tokener_parse_verbose(text, &parse_error);
	if (!record)
		return shim_error(err, err_size, "annotation %s: %s", OCI_ROOTFS_ANNOTATION,
				 json_tokener_error_desc(parse_error));
	rc = rootfs_layout_from_json(record, layout, disks, err, err_size);
	json_object_put(record);
	return rc;
}
