/*
 * The bundle's record of a running VM, for `delete`. See state.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "shim/state.h"
#include "shim/text.h"

static void state_path(const char *bundle, const char *suffix, char *path, size_t size)
{
	snprintf(path, size, "%s/%s%s", bundle, STATE_FILE, suffix);
}

int state_save(const char *bundle, const struct shim_state *state, char *err, size_t err_size)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 32];
	json_object *obj = json_object_new_object();
	const char *text;
	int fd, ret = -1;

	if (!obj)
		return shim_error(err, err_size, "out of memory");
	json_object_object_add(obj, "vmm_pid", json_object_new_int(state->vmm_pid));
	json_object_object_add(obj, "vmm_start_time",
			       json_object_new_uint64(state->vmm_start_time));
	json_object_object_add(obj, "vm_dir", json_object_new_string(state->vm_dir));
	text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	state_path(bundle, "", path, sizeof(path));
	state_path(bundle, ".tmp", tmp, sizeof(tmp));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		shim_error(err, err_size, "%s: %s", tmp, strerror(errno));
	} else if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) < 0) {
		shim_error(err, err_size, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
	} else if (close(fd) < 0 || rename(tmp, path) < 0) {
		shim_error(err, err_size, "%s: %s", path, strerror(errno));
		unlink(tmp);
	} else {
		ret = 0;
	}
	json_object_put(obj);
	return ret;
}

int state_load(const char *bundle, struct shim_state *state, char *err, size_t err_size)
{
	char path[PATH_MAX + 32];
	json_object *obj, *pid, *start, *dir;
	int ret = -1;

	memset(state, 0, sizeof(*state));
	state_path(bundle, "", path, sizeof(path));
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 1;
	obj = json_object_from_file(path);
	if (!obj)
		return shim_error(err, err_size, "%s: not readable JSON", path);
	if (!json_object_object_get_ex(obj, "vmm_pid", &pid) ||
	    !json_object_is_type(pid, json_type_int) ||
	    !json_object_object_get_ex(obj, "vmm_start_time", &start) ||
	    !json_object_is_type(start, json_type_int) ||
	    !json_object_object_get_ex(obj, "vm_dir", &dir) ||
	    !json_object_is_type(dir, json_type_string) ||
	    json_object_get_string_len(dir) >= (int)sizeof(state->vm_dir)) {
		shim_error(err, err_size, "%s: fields missing or mistyped", path);
	} else {
		state->vmm_pid = json_object_get_int(pid);
		state->vmm_start_time = json_object_get_uint64(start);
		snprintf(state->vm_dir, sizeof(state->vm_dir), "%s", json_object_get_string(dir));
		ret = 0;
	}
	json_object_put(obj);
	return ret;
}

void state_remove(const char *bundle)
{
	char path[PATH_MAX + 32];

	state_path(bundle, "", path, sizeof(path));
	unlink(path);
}
