/*
 * Unit tests for shim/oci.c with config.json files in the shape `ctr oci
 * spec` (containerd 1.6) writes: kept guest-made mounts, ext4 volumes and
 * read-only directory binds turned into disks plus binds from their guest
 * mount points, copied-in files, refused writable directory binds and
 * unknown types (disk set untouched), VM sizes from resources and
 * annotations, and the rootfs record written to and read from the bundle.
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
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "shim/oci.h"

/* `ctr oci spec` of containerd 1.6.20, capabilities shortened. */
#define CTR_DEFAULT_SPEC \
	"{\"ociVersion\":\"1.0.2-dev\",\"process\":{\"user\":{\"uid\":0,\"gid\":0},\"cwd\":\"/\"," \
	"\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_KILL\"]},\"rlimits\":[{\"type\":" \
	"\"RLIMIT_NOFILE\",\"hard\":1024,\"soft\":1024}],\"noNewPrivileges\":true}," \
	"\"root\":{\"path\":\"rootfs\"},\"mounts\":[" \
	"{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\",\"options\":[\"nosuid\",\"noexec\",\"nodev\"]}," \
	"{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"nosuid\",\"strictatime\",\"mode=755\",\"size=65536k\"]}," \
	"{\"destination\":\"/dev/pts\",\"type\":\"devpts\",\"source\":\"devpts\",\"options\":[\"nosuid\",\"noexec\",\"newinstance\",\"ptmxmode=0666\",\"mode=0620\",\"gid=5\"]}," \
	"{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\",\"source\":\"shm\",\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"mode=1777\",\"size=65536k\"]}," \
	"{\"destination\":\"/dev/mqueue\",\"type\":\"mqueue\",\"source\":\"mqueue\",\"options\":[\"nosuid\",\"noexec\",\"nodev\"]}," \
	"{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\",\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"ro\"]}," \
	"{\"destination\":\"/run\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"nosuid\",\"strictatime\",\"mode=755\",\"size=65536k\"]}]," \
	"\"linux\":{\"resources\":{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}," \
	"\"cgroupsPath\":\"/default/c1\",\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"ipc\"}," \
	"{\"type\":\"uts\"},{\"type\":\"mount\"},{\"type\":\"network\"}]," \
	"\"maskedPaths\":[\"/proc/kcore\"],\"readonlyPaths\":[\"/proc/sys\"]}}"

static char work[64], bundle[128];
static json_object *spec;
static struct disk_set disks;
static struct oci_guest guest;

static void write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(content, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(work, sizeof(work), "/tmp/erovm-oci-XXXXXX");
	if (!mkdtemp(work))
		return -1;
	snprintf(bundle, sizeof(bundle), "%s/bundle", work);
	spec = json_tokener_parse(CTR_DEFAULT_SPEC);
	disk_set_init(&disks);
	memset(&guest, 0, sizeof(guest));
	return spec && mkdir(bundle, 0700) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	char command[128];

	(void)state;
	oci_guest_free(&guest);
	disk_set_free(&disks);
	json_object_put(spec);
	snprintf(command, sizeof(command), "rm -rf %s", work);
	return system(command) == 0 ? 0 : -1;
}

/* Appends a mount to the spec. */
static void add_mount(const char *destination, const char *type, const char *source,
		      const char *options)
{
	json_object *mounts, *m = json_object_new_object();

	json_object_object_get_ex(spec, "mounts", &mounts);
	json_object_object_add(m, "destination", json_object_new_string(destination));
	if (type)
		json_object_object_add(m, "type", json_object_new_string(type));
	json_object_object_add(m, "source", json_object_new_string(source));
	json_object_object_add(m, "options", json_tokener_parse(options));
	json_object_array_add(mounts, m);
}

static json_object *guest_mount(size_t index)
{
	json_object *mounts;

	assert_true(json_object_object_get_ex(guest.spec, "mounts", &mounts));
	assert_true(index < json_object_array_length(mounts));
	return json_object_array_get_idx(mounts, index);
}

static const char *string_field(json_object *obj, const char *key)
{
	json_object *field;

	assert_true(json_object_object_get_ex(obj, key, &field));
	return json_object_get_string(field);
}

static void rewrite_ok(void)
{
	char err[1024] = "";

	if (oci_rewrite(spec, bundle, &disks, &guest, err, sizeof(err)) < 0)
		fail_msg("oci_rewrite: %s", err);
}

static void rewrite_fails(const char *message)
{
	char err[1024] = "";
	size_t before = disks.count;

	assert_int_equal(oci_rewrite(spec, bundle, &disks, &guest, err, sizeof(err)), -1);
	if (!strstr(err, message))
		fail_msg("error \"%s\", expected \"%s\"", err, message);
	assert_int_equal(disks.count, before);
	assert_null(guest.spec);
}

static void ctr_default_spec(void **state)
{
	json_object *original_mounts, *root;

	(void)state;
	rewrite_ok();
	assert_int_equal(disks.count, 0);
	assert_string_equal(guest.plan_lines, "");
	assert_int_equal(guest.file_count, 0);
	json_object_object_get_ex(spec, "mounts", &original_mounts);
	for (size_t i = 0; i < json_object_array_length(original_mounts); i++)
		assert_true(json_object_equal(guest_mount(i),
					      json_object_array_get_idx(original_mounts, i)));
	json_object_object_get_ex(guest.spec, "root", &root);
	assert_string_equal(string_field(root, "path"), ROOTFS_ROOT);
	/* The input is left as it was. */
	json_object_object_get_ex(spec, "root", &root);
	assert_string_equal(string_field(root, "path"), "rootfs");
	assert_int_equal(guest.vm.cpus, OCI_VM_DEFAULT_CPUS);
	assert_int_equal(guest.vm.memory, OCI_VM_DEFAULT_MEMORY);
}

static void volumes_and_copied_files(void **state)
{
	char image[128], dir[128], resolv[128], hosts[128], err[1024];
	const struct rootfs_mount root[] = { { .type = "bind", .source = "/n/1", .target = "",
		.option_count = 2, .options = (const char *const[]){ "rbind", "rw" } } };
	const struct rootfs_options root_options = { .bundle = bundle };
	struct rootfs_layout layout;
	struct mount_plan *plan;
	json_object *files, *m;
	char *text;
	int fd;

	(void)state;
	snprintf(image, sizeof(image), "%s/vol.img", work);
	snprintf(dir, sizeof(dir), "%s/config-dir", work);
	snprintf(resolv, sizeof(resolv), "%s/resolv.conf", work);
	snprintf(hosts, sizeof(hosts), "%s/hosts", work);
	fd = open(image, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	close(fd);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file(resolv, "hello");
	write_file(hosts, "127.0.0.1 localhost\n");
	assert_int_equal(chmod(resolv, 0644), 0);

	/* The rootfs takes its disks first. */
	assert_int_equal(rootfs_classify(root, 1, &root_options, &disks, &layout, err,
					 sizeof(err)), 0);
	add_mount("/data", "ext4", image, "[\"rw\",\"nosuid\",\"noatime\"]");
	add_mount("/etc/app", "bind", dir, "[\"rbind\",\"ro\"]");
	add_mount("/etc/resolv.conf", "bind", resolv, "[\"rbind\",\"ro\"]");
	add_mount("/etc/hosts", NULL, hosts, "[\"rbind\",\"rprivate\"]");
	add_mount("/sys/fs/cgroup", "cgroup", "cgroup", "[\"ro\"]");
	rewrite_ok();

	assert_int_equal(disks.count, 4);
	assert_string_equal(disks.disks[2].serial, "volume-0");
	assert_int_equal(disks.disks[2].source, DISK_FILES);
	assert_false(disks.disks[2].read_only);
	assert_string_equal(disks.disks[2].extents[0].path, image);
	assert_string_equal(disks.disks[3].serial, "volume-1");
	assert_int_equal(disks.disks[3].source, DISK_DIRECTORY);
	assert_string_equal(disks.disks[3].directory, dir);
	assert_non_null(strstr(disks.disks[3].extents[0].path, "/bundle/volume-1.erofs"));

	m = guest_mount(7);
	assert_string_equal(string_field(m, "destination"), "/data");
	assert_string_equal(string_field(m, "type"), "bind");
	assert_string_equal(string_field(m, "source"), "/run/mnt/volume-0");
	assert_string_equal(json_object_to_json_string_ext(json_object_object_get(m, "options"),
							   JSON_C_TO_STRING_PLAIN),
			    "[\"rbind\",\"rw\",\"nosuid\"]");
	m = guest_mount(8);
	assert_string_equal(string_field(m, "source"), "/run/mnt/volume-1");
	assert_string_equal(json_object_to_json_string_ext(json_object_object_get(m, "options"),
							   JSON_C_TO_STRING_PLAIN),
			    "[\"rbind\",\"ro\"]");
	m = guest_mount(9);
	assert_string_equal(string_field(m, "destination"), "/etc/resolv.conf");
	assert_string_equal(string_field(m, "source"), OCI_FILES_DIR "/0-resolv.conf");
	m = guest_mount(10);
	assert_string_equal(string_field(m, "source"), OCI_FILES_DIR "/1-hosts");
	assert_string_equal(string_field(guest_mount(11), "type"), "cgroup");

	assert_int_equal(guest.file_count, 2);
	assert_int_equal(guest.files[0].size, 5);
	assert_memory_equal(guest.files[0].data, "hello", 5);
	assert_int_equal(guest.files[0].mode, 0644);
	files = oci_files_to_json(&guest);
	assert_non_null(files);
	assert_string_equal(string_field(json_object_array_get_idx(files, 0), "data"), "aGVsbG8=");
	assert_string_equal(string_field(json_object_array_get_idx(files, 1), "data"),
			    "MTI3LjAuMC4xIGxvY2FsaG9zdAo=");
	json_object_put(files);

	assert_string_equal(guest.plan_lines,
		"mount type=ext4 source=serial:volume-0 name=volume-0 options=rw,nosuid,noatime\n"
		"mount type=erofs source=serial:volume-1 name=volume-1 options=ro\n");
	/* The rootfs plan and the volume lines together are one valid plan. */
	assert_int_equal(asprintf(&text, "%s%s", layout.plan, guest.plan_lines) > 0, 1);
	plan = malloc(sizeof(*plan));
	if (mount_plan_parse(text, strlen(text), plan, err, sizeof(err)) < 0)
		fail_msg("plan: %s\n%s", err, text);
	assert_int_equal(plan->mount_count, 5);
	assert_string_equal(plan->mounts[3].target, "/run/mnt/volume-0");
	assert_string_equal(plan->mounts[plan->root_index].target, ROOTFS_ROOT);
	mount_plan_free(plan);
	free(plan);
	free(text);
	rootfs_layout_free(&layout);
}

static void refused_mounts(void **state)
{
	char dir[128], image[128], big[128];
	int fd;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/data-dir", work);
	snprintf(image, sizeof(image), "%s/vol.img", work);
	snprintf(big, sizeof(big), "%s/big", work);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file(image, "");
	fd = open(big, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0 && ftruncate(fd, OCI_FILE_MAX + 1) == 0);
	close(fd);

	/* An earlier volume's disk is taken back when a later mount fails. */
	add_mount("/vol", "ext4", image, "[\"rw\"]");
	add_mount("/data", "bind", dir, "[\"rbind\",\"rw\"]");
	rewrite_fails("config.json: mount 8 (/data): a writable bind of directory");
	json_object_put(spec);

	spec = json_tokener_parse(CTR_DEFAULT_SPEC);
	add_mount("/data", NULL, dir, "[\"bind\"]");
	rewrite_fails("mount 7 (/data): a writable bind of directory");
	json_object_put(spec);

	spec = json_tokener_parse(CTR_DEFAULT_SPEC);
	add_mount("/n", "nfs", "server:/x", "[]");
	rewrite_fails("mount 7 (/n): type \"nfs\" is not supported in a VM");
	json_object_put(spec);

	spec = json_tokener_parse(CTR_DEFAULT_SPEC);
	add_mount("/dev/null2", "bind", "/dev/null", "[\"rbind\"]");
	rewrite_fails("bind source /dev/null is neither a directory nor a regular file");
	json_object_put(spec);

	spec = json_tokener_parse(CTR_DEFAULT_SPEC);
	add_mount("/x", "bind", "/nonexistent/x", "[\"rbind\"]");
	rewrite_fails("bind source /nonexistent/x: No such file or directory");
	json_object_put(spec);

	spec = json_tokener_parse(CTR_DEFAULT_SPEC);
	add_mount("/x", "bind", "relative", "[\"rbind\"]");
	rewrite_fails("bind source \"relative\" is not an absolute path");
	json_object_put(spec);

	spec = json_tokener_parse(CTR_DEFAULT_SPEC);
	add_mount("/big", "bind", big, "[\"rbind\",\"ro\"]");
	rewrite_fails("mount 7 (/big): file ");
	rewrite_fails("is 1048577 bytes; files are copied in, up to 1048576 bytes each");
	json_object_put(spec);

	spec = json_tokener_parse(CTR_DEFAULT_SPEC);
	add_mount("/d", "ext4", dir, "[]");
	rewrite_fails("is not an image file or a block device");
	json_object_put(spec);

	spec = json_tokener_parse(CTR_DEFAULT_SPEC);
	add_mount("relative", "tmpfs", "tmpfs", "[]");
	rewrite_fails("config.json: mounts[7].destination is missing or not absolute");
	json_object_put(spec);

	spec = json_tokener_parse("{\"mounts\":[{\"destination\":\"/x\",\"type\":5}]}");
	rewrite_fails("config.json: mounts[0].type is not a string");
	json_object_put(spec);
	spec = json_tokener_parse("{\"mounts\":{}}");
	rewrite_fails("config.json: mounts is not a array");
}

static void vm_size(const char *resources, const char *annotations, unsigned int cpus,
		    uint64_t memory)
{
	char text[1024], err[256];
	struct oci_vm_size size;
	json_object *s;

	snprintf(text, sizeof(text), "{\"linux\":{\"resources\":%s},\"annotations\":%s}",
		 resources, annotations);
	s = json_tokener_parse(text);
	assert_non_null(s);
	if (oci_vm_size(s, &size, err, sizeof(err)) < 0)
		fail_msg("%s: %s", text, err);
	assert_int_equal(size.cpus, cpus);
	assert_int_equal(size.memory, memory);
	json_object_put(s);
}

static void vm_size_fails(const char *resources, const char *annotations, const char *message)
{
	char text[1024], err[256] = "";
	struct oci_vm_size size;
	json_object *s;

	snprintf(text, sizeof(text), "{\"linux\":{\"resources\":%s},\"annotations\":%s}",
		 resources, annotations);
	s = json_tokener_parse(text);
	assert_non_null(s);
	assert_int_equal(oci_vm_size(s, &size, err, sizeof(err)), -1);
	if (!strstr(err, message))
		fail_msg("%s: error \"%s\", expected \"%s\"", text, err, message);
	json_object_put(s);
}

static void vm_sizes(void **state)
{
	const uint64_t mib = 1 << 20;

	(void)state;
	vm_size("{}", "{}", 1, 256 * mib);
	vm_size("{\"cpu\":{\"quota\":150000,\"period\":100000}}", "{}", 2, 256 * mib);
	vm_size("{\"cpu\":{\"quota\":50000}}", "{}", 1, 256 * mib);
	vm_size("{\"cpu\":{\"quota\":-1,\"period\":100000}}", "{}", 1, 256 * mib);
	vm_size("{\"cpu\":{\"quota\":100000000,\"period\":1000}}", "{}", OCI_VM_MAX_CPUS, 256 * mib);
	vm_size("{\"memory\":{\"limit\":536870912}}", "{}", 1, 576 * mib);
	vm_size("{\"memory\":{\"limit\":1000000}}", "{}", 1, 128 * mib);
	vm_size("{\"memory\":{\"limit\":536870913}}", "{}", 1, 577 * mib);
	vm_size("{\"cpu\":{\"quota\":400000}}",
		"{\"io.erovm.vm.cpus\":\"3\",\"io.erovm.vm.memory\":\"1G\"}", 3, 1024 * mib);
	vm_size("{}", "{\"io.erovm.vm.memory\":\"300\"}", 1, 300 * mib);
	vm_size_fails("{\"cpu\":{\"quota\":1000,\"period\":0}}", "{}",
		      "linux.resources.cpu.period 0 is not positive");
	vm_size_fails("{\"cpu\":{\"quota\":\"many\"}}", "{}",
		      "config.json: linux.resources.cpu.quota is not a int");
	vm_size_fails("{}", "{\"io.erovm.vm.cpus\":\"0\"}", "annotation io.erovm.vm.cpus=\"0\"");
	vm_size_fails("{}", "{\"io.erovm.vm.cpus\":\"65\"}", "not a vCPU count 1-64");
	vm_size_fails("{}", "{\"io.erovm.vm.cpus\":\"-2\"}", "not a vCPU count");
	vm_size_fails("{}", "{\"io.erovm.vm.memory\":\"64k\"}", "annotation io.erovm.vm.memory");
	vm_size_fails("{}", "{\"io.erovm.vm.memory\":\"1T\"}", "not a memory size");
	vm_size_fails("{}", "{\"io.erovm.vm.memory\":2048}", "annotations.io.erovm.vm.memory is "
		      "not a string");
	vm_size_fails("{\"memory\":{\"limit\":9223372036854775807}}", "{}",
		      "is more than a VM takes");
}

static void rootfs_record_in_the_bundle(void **state)
{
	const struct rootfs_mount root[] = { { .type = "overlay", .source = "overlay", .target = "",
		.option_count = 3, .options = (const char *const[]){
			"workdir=/s/2/work", "upperdir=/s/2/fs", "lowerdir=/s/1/fs" } } };
	const struct rootfs_options root_options = { .bundle = bundle };
	char config[192], err[1024];
	struct rootfs_layout layout, back;
	struct disk_set back_disks;
	json_object *read_back, *root_obj;
	struct stat st;

	(void)state;
	snprintf(config, sizeof(config), "%s/config.json", bundle);
	write_file(config, CTR_DEFAULT_SPEC);
	assert_int_equal(chmod(config, 0640), 0);
	assert_int_equal(oci_read_spec(bundle, &read_back, err, sizeof(err)), 0);
	assert_int_equal(oci_read_rootfs(read_back, &back, &back_disks, err, sizeof(err)), -1);
	assert_string_equal(err, "config.json has no io.erovm.rootfs annotation");
	json_object_put(read_back);

	assert_int_equal(rootfs_classify(root, 1, &root_options, &disks, &layout, err,
					 sizeof(err)), 0);
	if (oci_record_rootfs(bundle, spec, &layout, &disks, err, sizeof(err)) < 0)
		fail_msg("oci_record_rootfs: %s", err);
	assert_int_equal(stat(config, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);

	if (oci_read_spec(bundle, &read_back, err, sizeof(err)) < 0)
		fail_msg("oci_read_spec: %s", err);
	if (oci_read_rootfs(read_back, &back, &back_disks, err, sizeof(err)) < 0)
		fail_msg("oci_read_rootfs: %s", err);
	assert_string_equal(back.plan, layout.plan);
	assert_int_equal(back_disks.count, 2);
	assert_string_equal(back_disks.disks[0].directory, "/s/1/fs");
	assert_true(json_object_object_get_ex(read_back, "root", &root_obj));
	assert_string_equal(string_field(root_obj, "path"), "rootfs");
	rootfs_layout_free(&back);
	disk_set_free(&back_disks);
	json_object_put(read_back);
	rootfs_layout_free(&layout);
	snprintf(config, sizeof(config), "%s/.config.json.erovm", bundle);
	assert_int_equal(access(config, F_OK), -1);
	snprintf(config, sizeof(config), "%s/config.json", bundle);

	write_file(config, "{\"annotations\":{\"io.erovm.rootfs\":\"{not json\"}}");
	assert_int_equal(oci_read_spec(bundle, &read_back, err, sizeof(err)), 0);
	assert_int_equal(oci_read_rootfs(read_back, &back, &back_disks, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "annotation io.erovm.rootfs: "));
	json_object_put(read_back);
	write_file(config, "[1]");
	assert_int_equal(oci_read_spec(bundle, &read_back, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "config.json: not a JSON object"));
	unlink(config);
	assert_int_equal(oci_read_spec(bundle, &read_back, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ctr_default_spec, setup, teardown),
		cmocka_unit_test_setup_teardown(volumes_and_copied_files, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_mounts, setup, teardown),
		cmocka_unit_test_setup_teardown(vm_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(rootfs_record_in_the_bundle, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
