/*
 * containerd.task.v2.Task for erovm VMs. See service.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "containerd/cgroups/v2/metrics.pb-c.h"
#include "containerd/events/task.pb-c.h"
#include "containerd/task/v2/shim.pb-c.h"
#include "erovm_control.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "shim/events.h"
#include "shim/oci.h"
#include "shim/rootfs.h"
#include "shim/service.h"
#include "shim/state.h"
#include "shim/stdio.h"
#include "shim/text.h"
#include "vmm/guest_abi.h"

#define TASK_SERVICE "containerd.task.v2.Task"
#define MAX_CONNS 16
#define MAX_EXECS 256
#define STOP_GRACE_MS 10000
/* Exit status of the processes of a VM that died: killed (128 + SIGKILL). */
#define VM_DIED_STATUS 137
#define ERR_MAX 2048
/*
 * A dying VMM closes its sockets before it can be reaped: a connection
 * lost this long before vmm-run's end is still the VM's death.
 */
#define LOST_VM_WAIT_MS 2000

enum proc_status { PROC_CREATED, PROC_RUNNING, PROC_STOPPED };

struct task;

struct process {
	LIST_ENTRY(process) link;
	struct task *task;
	char *exec_id;			/* "" for the init process */
	char guest_id[32];		/* its Process record in the guest */
	enum proc_status status;
	uint32_t pid;
	uint32_t exit_status;
	struct timespec exited_at;
	char *stdin_path, *stdout_path, *stderr_path;
	bool terminal;
	char *spec;			/* an exec's OCI process (JSON) */
	bool guest_record;		/* the guest has its Process record */
	struct stdio *io;
	uint64_t serial;		/* names it in exit notes */
	pthread_t waiter;
	bool waiter_running;
	struct ttrpc_call **waits;	/* Waits to answer at exit */
	size_t wait_count;
};

LIST_HEAD(process_list, process);

struct task {
	LIST_ENTRY(task) link;
	char *id, *bundle;
	struct vm vm;
	struct process *init;
	struct process_list execs;
	unsigned int exec_count, next_exec;
	int notify_fd;			/* the loop's, for waiter threads */
	pthread_t oom_watcher;		/* waits for the guest's OOM kills */
	bool oom_watcher_running;
};

LIST_HEAD(task_list, task);

/* What a waiter or OOM thread tells the loop. */
struct loop_note {
	enum { NOTE_EXIT, NOTE_OOM } kind;
	uint64_t serial;		/* the process's (an OOM's: the init's) */
	uint32_t exit_status;
	bool lost;			/* the guest connection failed */
	struct timespec exited_at;
};

struct service {
	const struct service_config *cfg;
	struct events *events;
	struct task_list tasks;
	struct ttrpc_conn *conns[MAX_CONNS];
	struct ttrpc_service_table table;
	int notify[2];			/* waiter threads -> loop */
	uint64_t next_serial;
	bool shutdown;
};

/* ------------------------------------------------------------- helpers */

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static void timestamp_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static void to_timestamp(const struct timespec *ts, Google__Protobuf__Timestamp *out)
{
	out->seconds = ts->tv_sec;
	out->nanos = (int32_t)ts->tv_nsec;
}

static struct task *find_task(struct service *svc, const char *id)
{
	struct task *t;

	LIST_FOREACH(t, &svc->tasks, link)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

static struct process *find_exec(struct task *t, const char *exec_id)
{
	struct process *p;

	LIST_FOREACH(p, &t->execs, link)
		if (!strcmp(p->exec_id, exec_id))
			return p;
	return NULL;
}

/*
 * The process (id, exec_id) names, or NULL after failing @call with
 * NotFound.
 */
static struct process *lookup(struct service *svc, struct ttrpc_call *call, const char *id,
			      const char *exec_id, struct task **task)
{
	struct task *t = find_task(svc, id ? id : "");
	struct process *p;

	if (!t) {
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "task %s: not found", id ? id : "");
		return NULL;
	}
	p = exec_id && exec_id[0] ? find_exec(t, exec_id) : t->init;
	if (!p) {
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "task %s: exec %s not found", id, exec_id);
		return NULL;
	}
	if (task)
		*task = t;
	return p;
}

static void *unpack(struct ttrpc_call *call, const ProtobufCMessageDescriptor *type,
		    const uint8_t *payload, size_t len)
{
	void *msg = protobuf_c_message_unpack(type, NULL, len, payload);

	if (!msg)
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "%s: the request does not decode",
				ttrpc_call_method(call));
	return msg;
}

static void reply_empty(struct ttrpc_call *call)
{
	Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;

	ttrpc_call_reply_message(call, &empty.base);
}

/* Fails @call with the guest call's outcome: its code, or Unavailable. */
static void fail_guest(struct ttrpc_call *call, int code, const char *what, const char *err)
{
	ttrpc_call_fail(call, code > 0 ? (enum ttrpc_code)code : TTRPC_UNAVAILABLE, "%s: %s",
			what, err);
}

/* A guest call with an empty answer: @call gets OK, or the guest's failure. */
static void forward_call(struct ttrpc_call *call, struct task *t, const char *service,
			 const char *method, const ProtobufCMessage *request, const char *what)
{
	char err[ERR_MAX];
	int code = vm_call(&t->vm, service, method, request, NULL, NULL, VM_CALL_TIMEOUT_MS, err,
			   sizeof(err));

	if (code != TTRPC_OK)
		fail_guest(call, code, what, err);
	else
		reply_empty(call);
}

/* ------------------------------------------------------------- processes */

static struct process *process_new(struct task *t, const char *exec_id, bool terminal,
				   const char *in, const char *out, const char *err)
{
	struct process *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->task = t;
	p->exec_id = dup_or_empty(exec_id);
	p->stdin_path = dup_or_empty(in);
	p->stdout_path = dup_or_empty(out);
	p->stderr_path = dup_or_empty(err);
	p->terminal = terminal;
	if (!p->exec_id || !p->stdin_path || !p->stdout_path || !p->stderr_path) {
		free(p->exec_id);
		free(p->stdin_path);
		free(p->stdout_path);
		free(p->stderr_path);
		free(p);
		return NULL;
	}
	return p;
}

static void cancel_wait(struct ttrpc_call *call, void *arg)
{
	struct process *p = arg;

	for (size_t i = 0; i < p->wait_count; i++) {
		if (p->waits[i] == call) {
			p->waits[i] = p->waits[--p->wait_count];
			return;
		}
	}
}

static void fill_wait(const struct process *p, Containerd__Task__V2__WaitResponse *r,
		      Google__Protobuf__Timestamp *ts)
{
	to_timestamp(&p->exited_at, ts);
	r->exit_status = p->exit_status;
	r->exited_at = ts;
}

static void answer_waits(struct process *p)
{
	Containerd__Task__V2__WaitResponse r = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	fill_wait(p, &r, &ts);
	while (p->wait_count)
		ttrpc_call_reply_message(p->waits[--p->wait_count], &r.base);
}

/*
 * Joins the waiter, then stops the relays (the waiter uses them): the
 * process must have ended, or its VM, or never have started.
 */
static void process_release(struct process *p)
{
	if (p->waiter_running)
		pthread_join(p->waiter, NULL);
	p->waiter_running = false;
	if (p->io)
		stdio_free(p->io);
	p->io = NULL;
}

static void process_free(struct process *p)
{
	if (!p)
		return;
	process_release(p);
	/* Deferred Waits of a process that goes away learn it ended. */
	while (p->wait_count)
		ttrpc_call_fail(p->waits[--p->wait_count], TTRPC_NOT_FOUND,
				"process deleted before it exited");
	free(p->waits);
	free(p->exec_id);
	free(p->stdin_path);
	free(p->stdout_path);
	free(p->stderr_path);
	free(p->spec);
	free(p);
}

static void process_exited(struct service *svc, struct process *p, uint32_t status,
			   const struct timespec *when)
{
	Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	if (p->status == PROC_STOPPED)
		return;
	p->status = PROC_STOPPED;
	p->exit_status = status;
	p->exited_at = *when;
	to_timestamp(when, &ts);
	ev.container_id = p->task->id;
	ev.id = p->exec_id[0] ? p->exec_id : p->task->id;
	ev.pid = p->pid;
	ev.exit_status = status;
	ev.exited_at = &ts;
	events_publish(svc->events, "/tasks/exit", &ev.base);
	answer_waits(p);
}

/*
 * A waiter thread: Process.Wait on a connection of its own, then the
 * output delivered, then a note to the loop.
 */
static void *waiter_main(void *arg)
{
	struct process *p = arg;
	struct loop_note note = { .serial = p->serial, .lost = true };
	Erovm__Control__V1__WaitRequest req = EROVM__CONTROL__V1__WAIT_REQUEST__INIT;
	struct ttrpc_result result = { 0 };
	struct ttrpc_client *client = NULL;
	char err[256];
	int fd = vm_connect(&p->task->vm, err, sizeof(err));

	if (fd >= 0 && !(client = ttrpc_client_new(fd)))
		close(fd);
	if (client) {
		req.id = p->guest_id;
		if (ttrpc_client_call_message(client, GUEST_CONTROL_SERVICE_PROCESS, "Wait",
					      &req.base, &result, -1) == 0 &&
		    result.code == TTRPC_OK) {
			Erovm__Control__V1__WaitResponse *r =
				erovm__control__v1__wait_response__unpack(
					NULL, result.payload_len, result.payload);

			if (r) {
				note.lost = false;
				note.exit_status = r->exit_status;
				if (r->exited_at) {
					note.exited_at.tv_sec = r->exited_at->seconds;
					note.exited_at.tv_nsec = r->exited_at->nanos;
				}
				erovm__control__v1__wait_response__free_unpacked(r, NULL);
			}
		} else if (result.message) {
			shim_log("task %s: wait for %s: %s", p->task->id, p->guest_id,
				 result.message);
		}
		ttrpc_result_clear(&result);
		ttrpc_client_free(client);
	}
	if (note.lost || !note.exited_at.tv_sec)
		timestamp_now(&note.exited_at);
	if (p->io)
		stdio_wait_output(p->io);
	/* Smaller than PIPE_BUF: written whole. */
	if (write(p->task->notify_fd, &note, sizeof(note)) != sizeof(note))
		shim_log("task %s: the exit of %s could not be noted", p->task->id, p->guest_id);
	return NULL;
}

/* A task's OOM thread: Container.WaitOom, again and again, until it fails. */
static void *oom_watcher_main(void *arg)
{
	struct task *t = arg;
	struct loop_note note = { .kind = NOTE_OOM, .serial = t->init->serial };
	Erovm__Control__V1__ContainerRequest req = EROVM__CONTROL__V1__CONTAINER_REQUEST__INIT;
	struct ttrpc_client *client = NULL;
	char err[256];
	int fd = vm_connect(&t->vm, err, sizeof(err));

	if (fd >= 0 && !(client = ttrpc_client_new(fd)))
		close(fd);
	req.id = t->id;
	while (client) {
		struct ttrpc_result result = { 0 };
		int ret = ttrpc_client_call_message(client, GUEST_CONTROL_SERVICE_CONTAINER,
						    "WaitOom", &req.base, &result, -1);
		bool ok = ret == 0 && result.code == TTRPC_OK;

		ttrpc_result_clear(&result);
		if (!ok)
			break;
		if (write(t->notify_fd, &note, sizeof(note)) != sizeof(note))
			shim_log("task %s: an OOM kill could not be noted", t->id);
	}
	ttrpc_client_free(client);
	return NULL;
}

static int start_waiter(struct process *p, char *err, size_t err_size)
{
	if (pthread_create(&p->waiter, NULL, waiter_main, p))
		return shim_error(err, err_size, "cannot start a waiter thread");
	p->waiter_running = true;
	return 0;
}

static struct process *find_serial(struct service *svc, uint64_t serial)
{
	struct task *t;
	struct process *p;

	LIST_FOREACH(t, &svc->tasks, link) {
		if (t->init && t->init->serial == serial)
			return t->init;
		LIST_FOREACH(p, &t->execs, link)
			if (p->serial == serial)
				return p;
	}
	return NULL;
}

static void handle_notes(struct service *svc)
{
	struct loop_note note;

	while (read(svc->notify[0], &note, sizeof(note)) == sizeof(note)) {
		struct process *p = find_serial(svc, note.serial);
		uint32_t status = note.exit_status;

		/* A note from a process deleted meanwhile is stale. */
		if (!p)
			continue;
		if (note.kind == NOTE_OOM) {
			Containerd__Events__TaskOOM ev = CONTAINERD__EVENTS__TASK_OOM__INIT;

			ev.container_id = p->task->id;
			shim_log("task %s: the guest's OOM killer killed a process", p->task->id);
			events_publish(svc->events, "/tasks/oom", &ev.base);
			continue;
		}
		if (p->waiter_running) {
			pthread_join(p->waiter, NULL);
			p->waiter_running = false;
		}
		if (note.lost) {
			status = vm_exited_within(&p->task->vm, LOST_VM_WAIT_MS) ? VM_DIED_STATUS : 255;
			shim_log("task %s: %s: lost the guest (%s): exit status %u", p->task->id,
				 p->guest_id, p->task->vm.exited ? "the VM ended" : "connection",
				 status);
		}
		process_exited(svc, p, status, &note.exited_at);
	}
}

/* vmm-run ended: processes without a waiter end here, the rest by theirs. */
static void handle_children(struct service *svc)
{
	struct task *t;
	struct process *p;
	struct timespec now;

	timestamp_now(&now);
	LIST_FOREACH(t, &svc->tasks, link) {
		if (t->vm.exited || !vm_reap(&t->vm))
			continue;
		shim_log("task %s: vmm-run (pid %d) ended", t->id, (int)t->vm.pid);
		if (!t->init->waiter_running)
			process_exited(svc, t->init, VM_DIED_STATUS, &now);
		LIST_FOREACH(p, &t->execs, link)
			if (!p->waiter_running && p->status != PROC_CREATED)
				process_exited(svc, p, VM_DIED_STATUS, &now);
	}
}

/* ----------------------------------------------------------------- tasks */

static void task_free(struct task *t)
{
	struct process *p;

	if (!t)
		return;
	/* The VM first: its end releases waiters, relays and the OOM thread. */
	vm_stop(&t->vm, STOP_GRACE_MS);
	if (t->oom_watcher_running)
		pthread_join(t->oom_watcher, NULL);
	while ((p = LIST_FIRST(&t->execs))) {
		LIST_REMOVE(p, link);
		process_free(p);
	}
	process_free(t->init);
	free(t->id);
	free(t->bundle);
	free(t);
}

/*
 * The copied files go into the guest bundle's "files" directory, and the
 * spec's mounts bind them from there.
 */
static void place_files(json_object *spec, const struct oci_guest *guest, const char *id,
			Erovm__Control__V1__BundleFile **files,
			Erovm__Control__V1__BundleFile *storage, char (*paths)[PATH_MAX])
{
	json_object *mounts = NULL;

	json_object_object_get_ex(spec, "mounts", &mounts);
	for (size_t i = 0; i < guest->file_count; i++) {
		const struct oci_file *f = &guest->files[i];
		const char *base = strrchr(f->guest_path, '/');
		char full[2 * PATH_MAX];

		erovm__control__v1__bundle_file__init(&storage[i]);
		snprintf(paths[i], PATH_MAX, "files/%s", base ? base + 1 : f->guest_path);
		snprintf(full, sizeof(full), "%s/%s/%s", GUEST_CONTAINER_DIR, id, paths[i]);
		storage[i].path = paths[i];
		storage[i].mode = f->mode;
		storage[i].data.data = f->data;
		storage[i].data.len = f->size;
		files[i] = &storage[i];
		for (size_t m = 0; mounts && m < json_object_array_length(mounts); m++) {
			json_object *mount = json_object_array_get_idx(mounts, m), *source;

			if (json_object_object_get_ex(mount, "source", &source) &&
			    !strcmp(json_object_get_string(source), f->guest_path))
				json_object_object_add(mount, "source", json_object_new_string(full));
		}
	}
}

/* What the guest's spec needs beyond oci_rewrite()'s. */
static void adjust_spec(json_object *spec, const char *id, bool terminal)
{
	json_object *process, *hostname;

	if (json_object_object_get_ex(spec, "process", &process))
		json_object_object_add(process, "terminal", json_object_new_boolean(terminal));
	/* A VM of its own has a name of its own: the container's id by default. */
	if (!json_object_object_get_ex(spec, "hostname", &hostname) ||
	    !json_object_get_string(hostname)[0])
		json_object_object_add(spec, "hostname", json_object_new_string(id));
}

struct create_work {
	json_object *spec;
	struct disk_set disks;
	struct rootfs_layout layout;
	struct oci_guest guest;
	struct rootfs_mount *mounts;
	bool layout_set, guest_set;
	char *plan, *config;
	Erovm__Control__V1__BundleFile **files, *file_storage;
	char (*file_paths)[PATH_MAX];
};

static void create_work_free(struct create_work *w)
{
	if (w->spec)
		json_object_put(w->spec);
	if (w->layout_set)
		rootfs_layout_free(&w->layout);
	if (w->guest_set)
		oci_guest_free(&w->guest);
	disk_set_free(&w->disks);
	free(w->mounts);
	free(w->plan);
	free(w->config);
	free(w->files);
	free(w->file_storage);
	free(w->file_paths);
}

/* Decides and prepares the disks, and the spec and plan for the guest. */
static int prepare_create(struct service *svc, struct task *t,
			  const Containerd__Task__V2__CreateTaskRequest *req, struct create_work *w,
			  int *code, char *err, size_t err_size)
{
	struct rootfs_options ropts = { .bundle = req->bundle };
	size_t nfiles;

	*code = TTRPC_INVALID_ARGUMENT;
	w->mounts = calloc(req->n_rootfs + 1, sizeof(*w->mounts));
	if (!w->mounts)
		goto oom;
	for (size_t i = 0; i < req->n_rootfs; i++) {
		const Containerd__Types__Mount *m = req->rootfs[i];

		w->mounts[i] = (struct rootfs_mount){ m->type, m->source, m->target,
						      m->n_options,
						      (const char *const *)m->options };
	}
	if (oci_read_spec(req->bundle, &w->spec, err, err_size) < 0 ||
	    rootfs_classify(w->mounts, req->n_rootfs, &ropts, &w->disks, &w->layout, err,
			    err_size) < 0)
		return -1;
	w->layout_set = true;
	if (oci_rewrite(w->spec, req->bundle, &w->disks, &w->guest, err, err_size) < 0)
		return -1;
	w->guest_set = true;
	*code = TTRPC_FAILED_PRECONDITION;
	if (layers_prepare_disks(&w->disks, &svc->cfg->layers, err, err_size) < 0 ||
	    oci_record_rootfs(req->bundle, w->spec, &w->layout, &w->disks, err, err_size) < 0)
		return -1;
	adjust_spec(w->guest.spec, t->id, req->terminal);
	nfiles = w->guest.file_count;
	if (nfiles) {
		w->files = calloc(nfiles, sizeof(*w->files));
		w->file_storage = calloc(nfiles, sizeof(*w->file_storage));
		w->file_paths = calloc(nfiles, sizeof(*w->file_paths));
		if (!w->files || !w->file_storage || !w->file_paths)
			goto oom;
		place_files(w->guest.spec, &w->guest, t->id, w->files, w->file_storage,
			    w->file_paths);
	}
	/* The root: the rootfs plan, then the volumes'. */
	if (asprintf(&w->plan, "%s%s", w->layout.plan, w->guest.plan_lines) < 0) {
		w->plan = NULL;
		goto oom;
	}
	w->config = strdup(json_object_to_json_string_ext(w->guest.spec, JSON_C_TO_STRING_PLAIN));
	if (!w->config)
		goto oom;
	return 0;
oom:
	*code = TTRPC_RESOURCE_EXHAUSTED;
	return shim_error(err, err_size, "out of memory");
}

/* Prefixes @err with "@what: ", cutting its end if it no longer fits. */
static void explain(char *err, size_t err_size, const char *what)
{
	size_t prefix = strlen(what) + 2, len = strnlen(err, err_size - 1);

	if (prefix >= err_size)
		return;
	if (prefix + len >= err_size)
		len = err_size - 1 - prefix;
	memmove(err + prefix, err, len);
	err[prefix + len] = '\0';
	memcpy(err, what, prefix - 2);
	memcpy(err + prefix - 2, ": ", 2);
}

/* Everything up to a running VM and the container created in it. */
static int create_task(struct service *svc, struct task *t,
		       const Containerd__Task__V2__CreateTaskRequest *req, int *code, char *err,
		       size_t err_size)
{
	const struct service_config *cfg = svc->cfg;
	Erovm__Control__V1__ApplyRequest apply = EROVM__CONTROL__V1__APPLY_REQUEST__INIT;
	Erovm__Control__V1__CreateContainerRequest cr = EROVM__CONTROL__V1__CREATE_CONTAINER_REQUEST__INIT;
	struct stdio_paths paths = { req->stdin, req->stdout, req->stderr, req->terminal };
	struct create_work w = { 0 };
	struct shim_state state = { 0 };
	char ids[3][STDIO_STREAM_ID_MAX], dir[PATH_MAX];
	ProtobufCMessage *answer = NULL;
	struct vm_size size;
	int ret = -1, guest_code;

	disk_set_init(&w.disks);
	if (prepare_create(svc, t, req, &w, code, err, err_size) < 0)
		goto out;

	size.cpus = w.guest.vm.cpus;
	size.memory = w.guest.vm.memory;
	vm_dir_for(cfg->ns, t->id, dir, sizeof(dir));
	*code = TTRPC_UNAVAILABLE;
	ret = vm_start(&t->vm, &cfg->tools, dir, &w.disks, &size, cfg->boot_timeout_ms, err,
		       err_size);
	/*
	 * A workaround, logged each time: now and then a guest started here
	 * ends early in its boot, cause not found yet (its console's end is
	 * in the message). It is booted once more; a second death fails.
	 */
	if (ret < 0 && t->vm.died_booting) {
		shim_log("task %s: the VM died while booting, booting it again: %s", t->id, err);
		ret = vm_start(&t->vm, &cfg->tools, dir, &w.disks, &size, cfg->boot_timeout_ms,
			       err, err_size);
	}
	if (ret < 0) {
		explain(err, err_size, "starting the VM");
		goto out;
	}
	ret = -1;
	state.vmm_pid = t->vm.pid;
	state.vmm_start_time = t->vm.start_time;
	snprintf(state.vm_dir, sizeof(state.vm_dir), "%s", dir);
	*code = TTRPC_INTERNAL;
	if (state_save(req->bundle, &state, err, err_size) < 0)
		goto out;

	apply.plan.data = (uint8_t *)w.plan;
	apply.plan.len = strlen(w.plan);
	guest_code = vm_call(&t->vm, GUEST_CONTROL_SERVICE_MOUNT, "Apply", &apply.base,
			     &erovm__control__v1__apply_response__descriptor, &answer,
			     VM_CALL_TIMEOUT_MS, err, err_size);
	if (answer)
		protobuf_c_message_free_unpacked(answer, NULL);
	answer = NULL;
	if (guest_code != TTRPC_OK) {
		explain(err, err_size, "mounting the rootfs in the VM");
		*code = guest_code > 0 ? guest_code : TTRPC_UNAVAILABLE;
		goto out;
	}

	t->init->io = stdio_open(&t->vm, t->init->guest_id, &paths, ids, err, err_size);
	if (!t->init->io) {
		*code = TTRPC_INVALID_ARGUMENT;
		goto out;
	}
	cr.id = t->id;
	cr.config.data = (uint8_t *)w.config;
	cr.config.len = strlen(w.config);
	cr.n_files = w.guest.file_count;
	cr.files = w.files;
	cr.process_id = t->init->guest_id;
	cr.terminal = req->terminal;
	cr.stdin = ids[0];
	cr.stdout = ids[1];
	cr.stderr = ids[2];
	guest_code = vm_call(&t->vm, GUEST_CONTROL_SERVICE_CONTAINER, "Create", &cr.base,
			     &erovm__control__v1__start_response__descriptor, &answer,
			     VM_CALL_TIMEOUT_MS, err, err_size);
	if (guest_code != TTRPC_OK) {
		explain(err, err_size, "creating the container in the VM");
		*code = guest_code > 0 ? guest_code : TTRPC_UNAVAILABLE;
		goto out;
	}
	shim_log("task %s: created: vmm-run pid %d, container init guest pid %u", t->id,
		 (int)t->vm.pid, ((Erovm__Control__V1__StartResponse *)answer)->pid);
	protobuf_c_message_free_unpacked(answer, NULL);
	t->init->guest_record = true;
	t->init->pid = (uint32_t)t->vm.pid;
	*code = TTRPC_INTERNAL;
	if (start_waiter(t->init, err, err_size) < 0)
		goto out;
	if (pthread_create(&t->oom_watcher, NULL, oom_watcher_main, t))
		shim_log("task %s: no OOM events: cannot start a thread", t->id);
	else
		t->oom_watcher_running = true;
	ret = 0;
out:
	create_work_free(&w);
	return ret;
}

/* ------------------------------------------------------------- handlers */

#define SERVICE(ctx) ((struct service *)(ctx))

static struct task *task_new(struct service *svc, const Containerd__Task__V2__CreateTaskRequest *req)
{
	struct task *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	LIST_INIT(&t->execs);
	t->notify_fd = svc->notify[1];
	t->id = strdup(req->id);
	t->bundle = strdup(req->bundle);
	t->init = process_new(t, "", req->terminal, req->stdin, req->stdout, req->stderr);
	if (!t->id || !t->bundle || !t->init) {
		free(t->id);
		free(t->bundle);
		process_free(t->init);
		free(t);
		return NULL;
	}
	t->init->serial = ++svc->next_serial;
	snprintf(t->init->guest_id, sizeof(t->init->guest_id), "init");
	return t;
}

static void task_create(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct service *svc = SERVICE(ctx);
	Containerd__Task__V2__CreateTaskRequest *req;
	Containerd__Task__V2__CreateTaskResponse resp = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
	Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
	Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;
	char err[ERR_MAX];
	struct task *t;
	int code;

	req = unpack(call, &containerd__task__v2__create_task_request__descriptor, payload, len);
	if (!req)
		return;
	if (!req->id[0] || req->bundle[0] != '/') {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT,
				"create: an id and an absolute bundle path are required");
		goto out;
	}
	if (req->checkpoint[0]) {
		ttrpc_call_fail(call, TTRPC_UNIMPLEMENTED,
				"create %s: restoring a checkpoint is not supported by erovm",
				req->id);
		goto out;
	}
	if (find_task(svc, req->id)) {
		ttrpc_call_fail(call, TTRPC_ALREADY_EXISTS, "task %s: already exists", req->id);
		goto out;
	}
	t = task_new(svc, req);
	if (!t) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "create %s: out of memory", req->id);
		goto out;
	}
	if (create_task(svc, t, req, &code, err, sizeof(err)) < 0) {
		shim_log("task %s: create failed: %s", req->id, err);
		task_free(t);
		state_remove(req->bundle);
		ttrpc_call_fail(call, (enum ttrpc_code)code, "erovm: create %s: %s", req->id, err);
		goto out;
	}
	LIST_INSERT_HEAD(&svc->tasks, t, link);

	ev.container_id = t->id;
	ev.bundle = t->bundle;
	ev.n_rootfs = req->n_rootfs;
	ev.rootfs = req->rootfs;
	io.stdin = req->stdin;
	io.stdout = req->stdout;
	io.stderr = req->stderr;
	io.terminal = req->terminal;
	ev.io = &io;
	ev.pid = t->init->pid;
	events_publish(svc->events, "/tasks/create", &ev.base);
	resp.pid = t->init->pid;
	ttrpc_call_reply_message(call, &resp.base);
out:
	containerd__task__v2__create_task_request__free_unpacked(req, NULL);
}

static int start_exec(struct task *t, struct process *p, int *code, char *err, size_t err_size)
{
	struct stdio_paths paths = { p->stdin_path, p->stdout_path, p->stderr_path, p->terminal };
	Erovm__Control__V1__ExecContainerRequest er = EROVM__CONTROL__V1__EXEC_CONTAINER_REQUEST__INIT;
	ProtobufCMessage *answer = NULL;
	char ids[3][STDIO_STREAM_ID_MAX];
	int guest_code;

	p->io = stdio_open(&t->vm, p->guest_id, &paths, ids, err, err_size);
	if (!p->io) {
		*code = TTRPC_INVALID_ARGUMENT;
		return -1;
	}
	er.id = t->id;
	er.process_id = p->guest_id;
	er.process.data = (uint8_t *)p->spec;
	er.process.len = strlen(p->spec);
	er.terminal = p->terminal;
	er.stdin = ids[0];
	er.stdout = ids[1];
	er.stderr = ids[2];
	guest_code = vm_call(&t->vm, GUEST_CONTROL_SERVICE_CONTAINER, "Exec", &er.base,
			     &erovm__control__v1__start_response__descriptor, &answer,
			     VM_CALL_TIMEOUT_MS, err, err_size);
	if (guest_code != TTRPC_OK) {
		*code = guest_code > 0 ? guest_code : TTRPC_UNAVAILABLE;
		stdio_free(p->io);
		p->io = NULL;
		return -1;
	}
	p->pid = ((Erovm__Control__V1__StartResponse *)answer)->pid;
	p->guest_record = true;
	protobuf_c_message_free_unpacked(answer, NULL);
	if (start_waiter(p, err, err_size) < 0) {
		*code = TTRPC_INTERNAL;
		return -1;
	}
	return 0;
}

static void start_init(struct service *svc, struct ttrpc_call *call, struct task *t)
{
	Erovm__Control__V1__ContainerRequest cr = EROVM__CONTROL__V1__CONTAINER_REQUEST__INIT;
	Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
	Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
	char err[ERR_MAX];
	int code;

	cr.id = t->id;
	code = vm_call(&t->vm, GUEST_CONTROL_SERVICE_CONTAINER, "Start", &cr.base, NULL, NULL,
		       VM_CALL_TIMEOUT_MS, err, sizeof(err));
	if (code != TTRPC_OK) {
		fail_guest(call, code, "start", err);
		return;
	}
	t->init->status = PROC_RUNNING;
	ev.container_id = t->id;
	ev.pid = t->init->pid;
	events_publish(svc->events, "/tasks/start", &ev.base);
	resp.pid = t->init->pid;
	ttrpc_call_reply_message(call, &resp.base);
}

static void task_start(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct service *svc = SERVICE(ctx);
	Containerd__Task__V2__StartRequest *req;
	Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
	Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
	char err[ERR_MAX];
	struct process *p;
	struct task *t;
	int code;

	req = unpack(call, &containerd__task__v2__start_request__descriptor, payload, len);
	if (!req)
		return;
	p = lookup(svc, call, req->id, req->exec_id, &t);
	if (!p)
		goto out;
	if (p->status != PROC_CREATED) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "%s %s: already started",
				req->id, req->exec_id);
	} else if (t->vm.paused) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "task %s: paused", req->id);
	} else if (p == t->init) {
		start_init(svc, call, t);
	} else if (t->init->status != PROC_RUNNING) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION,
				"task %s: not running, cannot start exec %s", t->id, p->exec_id);
	} else if (start_exec(t, p, &code, err, sizeof(err)) < 0) {
		ttrpc_call_fail(call, (enum ttrpc_code)code, "exec %s in %s: %s", p->exec_id,
				t->id, err);
	} else {
		p->status = PROC_RUNNING;
		ev.container_id = t->id;
		ev.exec_id = p->exec_id;
		ev.pid = p->pid;
		events_publish(svc->events, "/tasks/exec-started", &ev.base);
		resp.pid = p->pid;
		ttrpc_call_reply_message(call, &resp.base);
	}
out:
	containerd__task__v2__start_request__free_unpacked(req, NULL);
}

/* An exec's OCI process spec (JSON) with its terminal setting, or NULL. */
static char *exec_spec(const Google__Protobuf__Any *any, bool terminal)
{
	json_object *spec;
	char *text = NULL;

	if (!any || memchr(any->value.data, 0, any->value.len))
		return NULL;
	spec = json_tokener_parse(any->value.len ? (const char *)any->value.data : "");
	if (spec && json_object_is_type(spec, json_type_object)) {
		json_object_object_add(spec, "terminal", json_object_new_boolean(terminal));
		text = strdup(json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN));
	}
	if (spec)
		json_object_put(spec);
	return text;
}

static void task_exec(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct service *svc = SERVICE(ctx);
	Containerd__Task__V2__ExecProcessRequest *req;
	Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
	struct process *p;
	struct task *t;
	char *spec;

	req = unpack(call, &containerd__task__v2__exec_process_request__descriptor, payload, len);
	if (!req)
		return;
	t = find_task(svc, req->id);
	if (!t) {
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "task %s: not found", req->id);
		goto out;
	}
	if (!req->exec_id[0]) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "exec in %s: an exec id is required",
				req->id);
		goto out;
	}
	if (find_exec(t, req->exec_id)) {
		ttrpc_call_fail(call, TTRPC_ALREADY_EXISTS, "exec %s in %s: already exists",
				req->exec_id, req->id);
		goto out;
	}
	if (t->init->status == PROC_STOPPED) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "task %s: stopped", req->id);
		goto out;
	}
	if (t->exec_count >= MAX_EXECS) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "task %s: %d execs at most",
				req->id, MAX_EXECS);
		goto out;
	}
	/* A JSON object, checked here; crun reads the rest. */
	spec = exec_spec(req->spec, req->terminal);
	if (!spec) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT,
				"exec %s: the process spec is not a JSON object", req->exec_id);
		goto out;
	}
	p = process_new(t, req->exec_id, req->terminal, req->stdin, req->stdout, req->stderr);
	if (!p) {
		free(spec);
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "exec: out of memory");
		goto out;
	}
	p->spec = spec;
	p->serial = ++svc->next_serial;
	snprintf(p->guest_id, sizeof(p->guest_id), "exec-%u", ++t->next_exec);
	LIST_INSERT_HEAD(&t->execs, p, link);
	t->exec_count++;
	ev.container_id = t->id;
	ev.exec_id = p->exec_id;
	events_publish(svc->events, "/tasks/exec-added", &ev.base);
	reply_empty(call);
out:
	containerd__task__v2__exec_process_request__free_unpacked(req, NULL);
}

static Containerd__V1__Types__Status process_state(const struct process *p)
{
	switch (p->status) {
	case PROC_CREATED:
		return CONTAINERD__V1__TYPES__STATUS__CREATED;
	case PROC_RUNNING:
		return p->task->vm.paused ? CONTAINERD__V1__TYPES__STATUS__PAUSED :
					    CONTAINERD__V1__TYPES__STATUS__RUNNING;
	case PROC_STOPPED:
		return CONTAINERD__V1__TYPES__STATUS__STOPPED;
	}
	return CONTAINERD__V1__TYPES__STATUS__UNKNOWN;
}

static void task_state(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Containerd__Task__V2__StateRequest *req;
	Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	struct process *p;
	struct task *t;

	req = unpack(call, &containerd__task__v2__state_request__descriptor, payload, len);
	if (!req)
		return;
	p = lookup(SERVICE(ctx), call, req->id, req->exec_id, &t);
	if (p) {
		resp.id = p->exec_id[0] ? p->exec_id : t->id;
		resp.bundle = t->bundle;
		resp.pid = p->pid;
		resp.status = process_state(p);
		resp.stdin = p->stdin_path;
		resp.stdout = p->stdout_path;
		resp.stderr = p->stderr_path;
		resp.terminal = p->terminal;
		resp.exec_id = p->exec_id;
		if (p->status == PROC_STOPPED) {
			resp.exit_status = p->exit_status;
			to_timestamp(&p->exited_at, &ts);
			resp.exited_at = &ts;
		}
		ttrpc_call_reply_message(call, &resp.base);
	}
	containerd__task__v2__state_request__free_unpacked(req, NULL);
}

static void task_kill(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct service *svc = SERVICE(ctx);
	Containerd__Task__V2__KillRequest *req;
	char err[ERR_MAX];
	struct process *p;
	struct task *t;

	req = unpack(call, &containerd__task__v2__kill_request__descriptor, payload, len);
	if (!req)
		return;
	p = lookup(svc, call, req->id, req->exec_id, &t);
	if (!p)
		goto out;
	if (req->signal < 1 || req->signal > 64) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "kill: bad signal %u", req->signal);
		goto out;
	}
	if (p->status == PROC_STOPPED || (p != t->init && p->status == PROC_CREATED)) {
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "%s %s: process already finished",
				req->id, req->exec_id);
		goto out;
	}
	/* A stopped VM would not deliver it. */
	if (t->vm.paused && vm_resume(&t->vm, err, sizeof(err)) == 0) {
		Containerd__Events__TaskResumed ev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;

		ev.container_id = t->id;
		events_publish(svc->events, "/tasks/resumed", &ev.base);
	}
	if (p == t->init) {
		Erovm__Control__V1__KillContainerRequest kr =
			EROVM__CONTROL__V1__KILL_CONTAINER_REQUEST__INIT;

		kr.id = t->id;
		kr.signal = req->signal;
		kr.all = req->all;
		forward_call(call, t, GUEST_CONTROL_SERVICE_CONTAINER, "Kill", &kr.base, "kill");
	} else {
		Erovm__Control__V1__SignalRequest sr = EROVM__CONTROL__V1__SIGNAL_REQUEST__INIT;

		sr.id = p->guest_id;
		sr.signal = req->signal;
		forward_call(call, t, GUEST_CONTROL_SERVICE_PROCESS, "Signal", &sr.base, "kill");
	}
out:
	containerd__task__v2__kill_request__free_unpacked(req, NULL);
}

static void task_wait(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Containerd__Task__V2__WaitRequest *req;
	struct process *p;

	req = unpack(call, &containerd__task__v2__wait_request__descriptor, payload, len);
	if (!req)
		return;
	p = lookup(SERVICE(ctx), call, req->id, req->exec_id, NULL);
	if (p && p->status == PROC_STOPPED) {
		Containerd__Task__V2__WaitResponse r = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
		Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

		fill_wait(p, &r, &ts);
		ttrpc_call_reply_message(call, &r.base);
	} else if (p) {
		struct ttrpc_call **waits = realloc(p->waits, (p->wait_count + 1) * sizeof(*waits));

		if (!waits) {
			ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "wait: out of memory");
		} else {
			p->waits = waits;
			p->waits[p->wait_count++] = call;
			ttrpc_call_defer(call, cancel_wait, p);
		}
	}
	containerd__task__v2__wait_request__free_unpacked(req, NULL);
}

static void fill_delete(const struct process *p, Containerd__Task__V2__DeleteResponse *r,
			Google__Protobuf__Timestamp *ts)
{
	r->pid = p->pid;
	r->exit_status = p->exit_status;
	to_timestamp(&p->exited_at, ts);
	r->exited_at = ts;
}

static void delete_exec(struct ttrpc_call *call, struct task *t, struct process *p)
{
	Containerd__Task__V2__DeleteResponse r = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	char err[ERR_MAX];

	if (p->status == PROC_RUNNING) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "exec %s: still running",
				p->exec_id);
		return;
	}
	if (p->guest_record && !t->vm.exited) {
		Erovm__Control__V1__DeleteRequest dr = EROVM__CONTROL__V1__DELETE_REQUEST__INIT;
		ProtobufCMessage *answer = NULL;

		dr.id = p->guest_id;
		if (vm_call(&t->vm, GUEST_CONTROL_SERVICE_PROCESS, "Delete", &dr.base,
			    &erovm__control__v1__wait_response__descriptor, &answer,
			    VM_CALL_TIMEOUT_MS, err, sizeof(err)) != TTRPC_OK)
			shim_log("task %s: forgetting %s in the guest: %s", t->id, p->guest_id, err);
		if (answer)
			protobuf_c_message_free_unpacked(answer, NULL);
	}
	fill_delete(p, &r, &ts);
	LIST_REMOVE(p, link);
	t->exec_count--;
	process_free(p);
	ttrpc_call_reply_message(call, &r.base);
}

static void delete_init(struct service *svc, struct ttrpc_call *call, struct task *t)
{
	Containerd__Task__V2__DeleteResponse r = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
	Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	struct process *init = t->init;
	char err[ERR_MAX];

	if (init->status == PROC_RUNNING) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "task %s: still running", t->id);
		return;
	}
	if (init->status == PROC_CREATED) {
		/* Never started: it ends here, killed with the VM. */
		init->exit_status = VM_DIED_STATUS;
		timestamp_now(&init->exited_at);
	}
	if (!t->vm.exited) {
		Erovm__Control__V1__ContainerRequest cr = EROVM__CONTROL__V1__CONTAINER_REQUEST__INIT;

		cr.id = t->id;
		if (vm_call(&t->vm, GUEST_CONTROL_SERVICE_CONTAINER, "Delete", &cr.base, NULL,
			    NULL, VM_CALL_TIMEOUT_MS, err, sizeof(err)) != TTRPC_OK)
			shim_log("task %s: crun delete: %s", t->id, err);
	}
	fill_delete(init, &r, &ts);
	ev.container_id = t->id;
	ev.pid = init->pid;
	ev.exit_status = init->exit_status;
	ev.exited_at = &ts;
	LIST_REMOVE(t, link);
	state_remove(t->bundle);
	/* The VM ends (its processes and disks released) before the event. */
	vm_stop(&t->vm, STOP_GRACE_MS);
	events_publish(svc->events, "/tasks/delete", &ev.base);
	task_free(t);
	ttrpc_call_reply_message(call, &r.base);
}

static void task_delete(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct service *svc = SERVICE(ctx);
	Containerd__Task__V2__DeleteRequest *req;
	struct process *p;
	struct task *t;

	req = unpack(call, &containerd__task__v2__delete_request__descriptor, payload, len);
	if (!req)
		return;
	p = lookup(svc, call, req->id, req->exec_id, &t);
	if (p && p != t->init)
		delete_exec(call, t, p);
	else if (p)
		delete_init(svc, call, t);
	containerd__task__v2__delete_request__free_unpacked(req, NULL);
}

static void task_pids(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Containerd__Task__V2__PidsRequest *req;
	Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
	Erovm__Control__V1__ContainerRequest cr = EROVM__CONTROL__V1__CONTAINER_REQUEST__INIT;
	Erovm__Control__V1__PidsResponse *pids = NULL;
	Containerd__V1__Types__ProcessInfo *infos = NULL, **list = NULL;
	char err[ERR_MAX];
	struct task *t;
	int code;

	req = unpack(call, &containerd__task__v2__pids_request__descriptor, payload, len);
	if (!req)
		return;
	t = find_task(SERVICE(ctx), req->id);
	if (!t) {
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "task %s: not found", req->id);
		goto out;
	}
	cr.id = t->id;
	code = vm_call(&t->vm, GUEST_CONTROL_SERVICE_CONTAINER, "Pids", &cr.base,
		       &erovm__control__v1__pids_response__descriptor, (ProtobufCMessage **)&pids,
		       VM_CALL_TIMEOUT_MS, err, sizeof(err));
	if (code != TTRPC_OK) {
		fail_guest(call, code, "pids", err);
		goto out;
	}
	infos = calloc(pids->n_pids + 1, sizeof(*infos));
	list = calloc(pids->n_pids + 1, sizeof(*list));
	if (!infos || !list) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "pids: out of memory");
		goto out;
	}
	for (size_t i = 0; i < pids->n_pids; i++) {
		containerd__v1__types__process_info__init(&infos[i]);
		infos[i].pid = pids->pids[i];
		list[i] = &infos[i];
	}
	resp.n_processes = pids->n_pids;
	resp.processes = list;
	ttrpc_call_reply_message(call, &resp.base);
out:
	free(infos);
	free(list);
	if (pids)
		protobuf_c_message_free_unpacked(&pids->base, NULL);
	containerd__task__v2__pids_request__free_unpacked(req, NULL);
}

static void pause_or_resume(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			    void *ctx, bool pause)
{
	struct service *svc = SERVICE(ctx);
	Containerd__Task__V2__PauseRequest *req;
	char err[ERR_MAX];
	struct task *t;

	/* PauseRequest and ResumeRequest are both {1 id}. */
	req = unpack(call, &containerd__task__v2__pause_request__descriptor, payload, len);
	if (!req)
		return;
	t = find_task(svc, req->id);
	if (!t) {
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "task %s: not found", req->id);
	} else if (t->init->status != PROC_RUNNING) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "task %s: not running", req->id);
	} else if (t->vm.paused == pause) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "task %s: %s", req->id,
				pause ? "already paused" : "not paused");
	} else if ((pause ? vm_pause : vm_resume)(&t->vm, err, sizeof(err)) < 0) {
		ttrpc_call_fail(call, TTRPC_UNAVAILABLE, "%s: %s", pause ? "pause" : "resume", err);
	} else {
		Containerd__Events__TaskPaused ev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;

		/* TaskPaused and TaskResumed are both {1 container_id}. */
		ev.container_id = t->id;
		if (!pause)
			ev.base.descriptor = &containerd__events__task_resumed__descriptor;
		events_publish(svc->events, pause ? "/tasks/paused" : "/tasks/resumed", &ev.base);
		reply_empty(call);
	}
	containerd__task__v2__pause_request__free_unpacked(req, NULL);
}

static void task_pause(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	pause_or_resume(call, payload, len, ctx, true);
}

static void task_resume(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	pause_or_resume(call, payload, len, ctx, false);
}

static void task_checkpoint(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			    void *ctx)
{
	(void)payload;
	(void)len;
	(void)ctx;
	ttrpc_call_fail(call, TTRPC_UNIMPLEMENTED, "checkpoint is not supported by erovm");
}

static void task_resize_pty(struct ttrpc_call *call, const uint8_t *payload, size_t len,
			    void *ctx)
{
	Containerd__Task__V2__ResizePtyRequest *req;
	Erovm__Control__V1__ResizePtyRequest rr = EROVM__CONTROL__V1__RESIZE_PTY_REQUEST__INIT;
	char err[ERR_MAX];
	struct process *p;
	struct task *t;
	int code;

	req = unpack(call, &containerd__task__v2__resize_pty_request__descriptor, payload, len);
	if (!req)
		return;
	p = lookup(SERVICE(ctx), call, req->id, req->exec_id, &t);
	if (!p)
		goto out;
	if (!p->terminal) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "%s %s: no terminal", req->id,
				req->exec_id);
	} else if (!p->guest_record || p->status == PROC_STOPPED) {
		/* Nothing to resize yet, or any more. */
		reply_empty(call);
	} else {
		rr.id = p->guest_id;
		rr.width = req->width;
		rr.height = req->height;
		code = vm_call(&t->vm, GUEST_CONTROL_SERVICE_PROCESS, "ResizePty", &rr.base, NULL,
			       NULL, VM_CALL_TIMEOUT_MS, err, sizeof(err));
		if (code != TTRPC_OK && code != TTRPC_NOT_FOUND)
			fail_guest(call, code, "resize", err);
		else
			reply_empty(call);
	}
out:
	containerd__task__v2__resize_pty_request__free_unpacked(req, NULL);
}

static void task_close_io(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Containerd__Task__V2__CloseIORequest *req;
	struct process *p;

	req = unpack(call, &containerd__task__v2__close_iorequest__descriptor, payload, len);
	if (!req)
		return;
	p = lookup(SERVICE(ctx), call, req->id, req->exec_id, NULL);
	if (p) {
		if (req->stdin && p->io)
			stdio_close_stdin(p->io);
		reply_empty(call);
	}
	containerd__task__v2__close_iorequest__free_unpacked(req, NULL);
}

static void task_update(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Containerd__Task__V2__UpdateTaskRequest *req;
	Erovm__Control__V1__UpdateContainerRequest ur = EROVM__CONTROL__V1__UPDATE_CONTAINER_REQUEST__INIT;
	struct task *t;

	req = unpack(call, &containerd__task__v2__update_task_request__descriptor, payload, len);
	if (!req)
		return;
	t = find_task(SERVICE(ctx), req->id);
	if (!t) {
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "task %s: not found", req->id);
	} else if (!req->resources || !req->resources->value.len) {
		ttrpc_call_fail(call, TTRPC_INVALID_ARGUMENT, "update %s: no resources", req->id);
	} else if (t->init->status == PROC_STOPPED) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "task %s: stopped", req->id);
	} else {
		ur.id = t->id;
		ur.resources = req->resources->value;
		forward_call(call, t, GUEST_CONTROL_SERVICE_CONTAINER, "Update", &ur.base, "update");
	}
	containerd__task__v2__update_task_request__free_unpacked(req, NULL);
}

/* The VMM's CPU time (microseconds) and resident memory (bytes). */
static int vmm_usage(pid_t pid, uint64_t *user_us, uint64_t *system_us, uint64_t *rss)
{
	char path[64], buf[1024], *p;
	unsigned long long utime = 0, stime = 0, pages = 0;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	p = ok ? strrchr(buf, ')') : NULL;
	/* utime and stime are fields 14 and 15; p is before field 3. */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &utime, &stime) != 2)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	ok = fscanf(f, "%*u %llu", &pages) == 1;
	fclose(f);
	if (!ok || tick <= 0 || page <= 0)
		return -1;
	*user_us = utime * 1000000ULL / (unsigned long long)tick;
	*system_us = stime * 1000000ULL / (unsigned long long)tick;
	*rss = pages * (unsigned long long)page;
	return 0;
}

static void task_stats(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Containerd__Task__V2__StatsRequest *req;
	Containerd__Task__V2__StatsResponse resp = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
	Io__Containerd__Cgroups__V2__Metrics metrics = IO__CONTAINERD__CGROUPS__V2__METRICS__INIT;
	Io__Containerd__Cgroups__V2__CPUStat cpu = IO__CONTAINERD__CGROUPS__V2__CPUSTAT__INIT;
	Io__Containerd__Cgroups__V2__MemoryStat mem = IO__CONTAINERD__CGROUPS__V2__MEMORY_STAT__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	uint8_t *packed = NULL;
	uint64_t user, sys, rss;
	struct task *t;

	req = unpack(call, &containerd__task__v2__stats_request__descriptor, payload, len);
	if (!req)
		return;
	t = find_task(SERVICE(ctx), req->id);
	if (!t) {
		ttrpc_call_fail(call, TTRPC_NOT_FOUND, "task %s: not found", req->id);
		goto out;
	}
	if (vm_reap(&t->vm) || vmm_usage(t->vm.pid, &user, &sys, &rss) < 0) {
		ttrpc_call_fail(call, TTRPC_FAILED_PRECONDITION, "task %s: the VM is not running",
				req->id);
		goto out;
	}
	/* The VM as a whole: its monitor's CPU time and resident memory. */
	cpu.user_usec = user;
	cpu.system_usec = sys;
	cpu.usage_usec = user + sys;
	mem.usage = rss;
	mem.usage_limit = t->vm.memory;
	metrics.cpu = &cpu;
	metrics.memory = &mem;
	packed = malloc(protobuf_c_message_get_packed_size(&metrics.base) + 1);
	if (!packed) {
		ttrpc_call_fail(call, TTRPC_RESOURCE_EXHAUSTED, "stats: out of memory");
		goto out;
	}
	any.type_url = (char *)metrics.base.descriptor->name;
	any.value.len = protobuf_c_message_pack(&metrics.base, packed);
	any.value.data = packed;
	resp.stats = &any;
	ttrpc_call_reply_message(call, &resp.base);
out:
	free(packed);
	containerd__task__v2__stats_request__free_unpacked(req, NULL);
}

static void task_connect(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	Containerd__Task__V2__ConnectRequest *req;
	Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
	struct task *t;

	req = unpack(call, &containerd__task__v2__connect_request__descriptor, payload, len);
	if (!req)
		return;
	t = find_task(SERVICE(ctx), req->id);
	resp.shim_pid = (uint32_t)getpid();
	resp.task_pid = t ? t->init->pid : 0;
	resp.version = SHIM_VERSION;
	ttrpc_call_reply_message(call, &resp.base);
	containerd__task__v2__connect_request__free_unpacked(req, NULL);
}

static void task_shutdown(struct ttrpc_call *call, const uint8_t *payload, size_t len, void *ctx)
{
	struct service *svc = SERVICE(ctx);
	Containerd__Task__V2__ShutdownRequest *req;

	req = unpack(call, &containerd__task__v2__shutdown_request__descriptor, payload, len);
	if (!req)
		return;
	/* With tasks left, only "now" ends the shim (containerd's rule). */
	if (req->now || !LIST_FIRST(&svc->tasks))
		svc->shutdown = true;
	reply_empty(call);
	containerd__task__v2__shutdown_request__free_unpacked(req, NULL);
}

static const struct ttrpc_method task_methods[] = {
	{ TASK_SERVICE, "State", task_state },
	{ TASK_SERVICE, "Create", task_create },
	{ TASK_SERVICE, "Start", task_start },
	{ TASK_SERVICE, "Delete", task_delete },
	{ TASK_SERVICE, "Pids", task_pids },
	{ TASK_SERVICE, "Pause", task_pause },
	{ TASK_SERVICE, "Resume", task_resume },
	{ TASK_SERVICE, "Checkpoint", task_checkpoint },
	{ TASK_SERVICE, "Kill", task_kill },
	{ TASK_SERVICE, "Exec", task_exec },
	{ TASK_SERVICE, "ResizePty", task_resize_pty },
	{ TASK_SERVICE, "CloseIO", task_close_io },
	{ TASK_SERVICE, "Update", task_update },
	{ TASK_SERVICE, "Wait", task_wait },
	{ TASK_SERVICE, "Stats", task_stats },
	{ TASK_SERVICE, "Connect", task_connect },
	{ TASK_SERVICE, "Shutdown", task_shutdown },
};

/* ----------------------------------------------------------------- loop */

static void accept_conns(struct service *svc, int listen_fd)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		size_t slot;

		if (fd < 0)
			return;
		for (slot = 0; slot < MAX_CONNS && svc->conns[slot]; slot++)
			;
		if (slot == MAX_CONNS || !(svc->conns[slot] = ttrpc_conn_new(fd, &svc->table))) {
			shim_log("refusing a connection: %s",
				 slot == MAX_CONNS ? "too many" : "out of memory");
			close(fd);
		}
	}
}

int service_run(const struct service_config *cfg, int listen_fd)
{
	struct service svc = { .cfg = cfg };
	sigset_t mask;
	int signal_fd;

	LIST_INIT(&svc.tasks);
	svc.table = (struct ttrpc_service_table){ task_methods,
						  sizeof(task_methods) / sizeof(task_methods[0]),
						  &svc };
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (signal_fd < 0 || pipe2(svc.notify, O_CLOEXEC) < 0) {
		shim_log("signalfd or pipe: %s", strerror(errno));
		return 1;
	}
	fcntl(svc.notify[0], F_SETFL, O_NONBLOCK);
	svc.events = events_new(cfg->ttrpc_address, cfg->ns);
	fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);

	while (!svc.shutdown) {
		struct pollfd fds[3 + MAX_CONNS];
		struct ttrpc_conn *polled[MAX_CONNS];
		size_t n = 3, nconns = 0;

		fds[0] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = signal_fd, .events = POLLIN };
		fds[2] = (struct pollfd){ .fd = svc.notify[0], .events = POLLIN };
		for (size_t i = 0; i < MAX_CONNS; i++) {
			if (!svc.conns[i])
				continue;
			polled[nconns++] = svc.conns[i];
			fds[n++] = (struct pollfd){ .fd = ttrpc_conn_fd(svc.conns[i]),
						    .events = ttrpc_conn_events(svc.conns[i]) };
		}
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			shim_log("poll: %s", strerror(errno));
			break;
		}
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			while (read(signal_fd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD)
					handle_children(&svc);
				else
					svc.shutdown = true;
			}
		}
		if (fds[2].revents & POLLIN)
			handle_notes(&svc);
		for (size_t i = 0; i < nconns; i++) {
			if (!fds[3 + i].revents || ttrpc_conn_handle(polled[i], fds[3 + i].revents) == 0)
				continue;
			for (size_t slot = 0; slot < MAX_CONNS; slot++)
				if (svc.conns[slot] == polled[i])
					svc.conns[slot] = NULL;
			ttrpc_conn_free(polled[i]);
		}
		if (fds[0].revents & POLLIN)
			accept_conns(&svc, listen_fd);
	}

	/* Answers already queued (Shutdown's) go out before the end. */
	for (size_t i = 0; i < MAX_CONNS; i++) {
		if (!svc.conns[i])
			continue;
		for (int tries = 0; tries < 100 && !ttrpc_conn_flushed(svc.conns[i]); tries++) {
			struct pollfd pfd = { .fd = ttrpc_conn_fd(svc.conns[i]), .events = POLLOUT };

			if (poll(&pfd, 1, 10) > 0 && ttrpc_conn_handle(svc.conns[i], pfd.revents) < 0)
				break;
		}
	}
	while (LIST_FIRST(&svc.tasks)) {
		struct task *t = LIST_FIRST(&svc.tasks);

		LIST_REMOVE(t, link);
		state_remove(t->bundle);
		task_free(t);
	}
	for (size_t i = 0; i < MAX_CONNS; i++)
		ttrpc_conn_free(svc.conns[i]);
	events_free(svc.events);
	close(svc.notify[0]);
	close(svc.notify[1]);
	close(signal_fd);
	return 0;
}
