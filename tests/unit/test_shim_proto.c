/*
 * Unit tests for the containerd protocol buffers under proto/ (generated
 * by protoc-c): the messages a shim exchanges with containerd round-trip,
 * their bytes match encodings worked out by hand from containerd's field
 * numbers, and a CreateTaskRequest from a newer containerd, with fields
 * this shim does not know, still decodes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "containerd/events/task.pb-c.h"
#include "containerd/runtimeoptions/v1/api.pb-c.h"
#include "containerd/services/events/ttrpc/v1/events.pb-c.h"
#include "containerd/task/v2/shim.pb-c.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Packs @msg into a new buffer; *@len gets its size. */
static uint8_t *pack(const ProtobufCMessage *msg, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(msg);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(msg, buf), *len);
	return buf;
}

static void assert_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
}

static void create_task_request_round_trip(void **state)
{
	char *overlay_options[] = { "index=off", "workdir=/s/2/work", "upperdir=/s/2/fs",
				    "lowerdir=/s/1/fs:/s/0/fs" };
	char *bind_options[] = { "rbind", "ro" };
	Containerd__Types__Mount overlay = CONTAINERD__TYPES__MOUNT__INIT;
	Containerd__Types__Mount bind = CONTAINERD__TYPES__MOUNT__INIT;
	Containerd__Types__Mount *mounts[] = { &overlay, &bind };
	Runtimeoptions__V1__Options runtime_options = RUNTIMEOPTIONS__V1__OPTIONS__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	Containerd__Task__V2__CreateTaskRequest req = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
	Containerd__Task__V2__CreateTaskRequest *got;
	Runtimeoptions__V1__Options *got_options;
	uint8_t *buf, *options_buf;
	size_t len, options_len;

	(void)state;
	overlay.type = "overlay";
	overlay.source = "overlay";
	overlay.n_options = ARRAY_LEN(overlay_options);
	overlay.options = overlay_options;
	bind.type = "bind";
	bind.source = "/var/lib/native/snapshots/3";
	bind.target = "/data";
	bind.n_options = ARRAY_LEN(bind_options);
	bind.options = bind_options;
	runtime_options.type_url = "io.erovm.config";
	runtime_options.config_path = "/etc/erovm/config.toml";
	options_buf = pack(&runtime_options.base, &options_len);
	any.type_url = "runtimeoptions.v1.Options";
	any.value.data = options_buf;
	any.value.len = options_len;

	req.id = "c1";
	req.bundle = "/run/containerd/io.containerd.runtime.v2.task/default/c1";
	req.n_rootfs = ARRAY_LEN(mounts);
	req.rootfs = mounts;
	req.terminal = true;
	req.stdin = "/run/fifo/stdin";
	req.stdout = "/run/fifo/stdout";
	req.stderr = "";
	req.checkpoint = "/cp";
	req.parent_checkpoint = "/pcp";
	req.options = &any;
	buf = pack(&req.base, &len);

	got = containerd__task__v2__create_task_request__unpack(NULL, len, buf);
	assert_non_null(got);
	assert_string_equal(got->id, "c1");
	assert_string_equal(got->bundle, req.bundle);
	assert_int_equal(got->n_rootfs, 2);
	assert_string_equal(got->rootfs[0]->type, "overlay");
	assert_string_equal(got->rootfs[0]->target, "");
	assert_int_equal(got->rootfs[0]->n_options, 4);
	assert_string_equal(got->rootfs[0]->options[3], "lowerdir=/s/1/fs:/s/0/fs");
	assert_string_equal(got->rootfs[1]->source, "/var/lib/native/snapshots/3");
	assert_string_equal(got->rootfs[1]->target, "/data");
	assert_string_equal(got->rootfs[1]->options[1], "ro");
	assert_true(got->terminal);
	assert_string_equal(got->stdin, "/run/fifo/stdin");
	assert_string_equal(got->stdout, "/run/fifo/stdout");
	assert_string_equal(got->stderr, "");
	assert_string_equal(got->checkpoint, "/cp");
	assert_string_equal(got->parent_checkpoint, "/pcp");
	assert_non_null(got->options);
	assert_string_equal(got->options->type_url, "runtimeoptions.v1.Options");

	got_options = runtimeoptions__v1__options__unpack(NULL, got->options->value.len,
							  got->options->value.data);
	assert_non_null(got_options);
	assert_string_equal(got_options->type_url, "io.erovm.config");
	assert_string_equal(got_options->config_path, "/etc/erovm/config.toml");

	runtimeoptions__v1__options__free_unpacked(got_options, NULL);
	containerd__task__v2__create_task_request__free_unpacked(got, NULL);
	free(options_buf);
	free(buf);
}

/*
 * A CreateTaskRequest with fields of every wire type this shim does not
 * know, also inside a Mount: decoding skips them and keeps the rest.
 */
static void create_task_request_skips_unknown_fields(void **state)
{
	static const uint8_t wire[] = {
		0x0a, 0x02, 'c', '1',			/* 1 id = "c1" */
		0xb8, 0x06, 0x2a,			/* 103 varint 42 (unknown) */
		0x12, 0x02, '/', 'b',			/* 2 bundle = "/b" */
		0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8,	/* 100 fixed64 (unknown) */
		0x1a, 0x13,				/* 3 rootfs, 19 bytes: */
		0x0a, 0x04, 'b', 'i', 'n', 'd',		/*   1 type = "bind" */
		0xaa, 0x06, 0x03, 'x', 'y', 'z',	/*   101 bytes (unknown) */
		0x22, 0x05, 'r', 'b', 'i', 'n', 'd',	/*   4 options "rbind" */
		0xb5, 0x06, 9, 9, 9, 9,			/* 102 fixed32 (unknown) */
		0x20, 0x01,				/* 4 terminal = true */
		0xda, 0x06, 0x00,			/* 107 empty bytes (unknown) */
		0x58, 0x07,				/* 11 varint (oom_path's number, a string in 2.x: unknown here) */
		0x32, 0x03, '/', 'o', '1',		/* 6 stdout = "/o1" */
	};
	Containerd__Task__V2__CreateTaskRequest *got;

	(void)state;
	got = containerd__task__v2__create_task_request__unpack(NULL, sizeof(wire), wire);
	assert_non_null(got);
	assert_string_equal(got->id, "c1");
	assert_string_equal(got->bundle, "/b");
	assert_int_equal(got->n_rootfs, 1);
	assert_string_equal(got->rootfs[0]->type, "bind");
	assert_int_equal(got->rootfs[0]->n_options, 1);
	assert_string_equal(got->rootfs[0]->options[0], "rbind");
	assert_true(got->terminal);
	assert_string_equal(got->stdout, "/o1");
	assert_null(got->options);
	containerd__task__v2__create_task_request__free_unpacked(got, NULL);
}

/* Cut anywhere inside a field, the message is refused, not misread. */
static void truncated_messages_are_refused(void **state)
{
	static const uint8_t wire[] = {
		0x0a, 0x02, 'c', '1', 0x1a, 0x06, 0x0a, 0x04, 'b', 'i', 'n', 'd',
	};
	static const size_t cuts[] = { 1, 3, 5, 9, 11 };

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cuts); i++)
		assert_null(containerd__task__v2__create_task_request__unpack(NULL, cuts[i], wire));
	/* A length running past the end, and a bad wire type (7). */
	assert_null(containerd__task__v2__create_task_request__unpack(
		NULL, 4, (const uint8_t[]){ 0x0a, 0x05, 'c', '1' }));
	assert_null(containerd__task__v2__create_task_request__unpack(
		NULL, 2, (const uint8_t[]){ 0x0f, 0x00 }));
}

/* Field numbers and types as containerd's, checked against hand encodings. */
static void responses_match_hand_encodings(void **state)
{
	Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Containerd__Task__V2__StateResponse st = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
	Containerd__Task__V2__DeleteResponse del = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
	Containerd__Task__V2__WaitResponse wait = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
	Containerd__Task__V2__ConnectResponse conn = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
	Containerd__Task__V2__StateResponse *st_got;
	static const uint8_t st_wire[] = {
		0x0a, 0x02, 'c', '1',		/* 1 id */
		0x18, 0x2a,			/* 3 pid 42 */
		0x20, 0x03,			/* 4 status STOPPED */
		0x48, 0x89, 0x01,		/* 9 exit_status 137 */
		0x52, 0x05, 0x08, 0x64, 0x10, 0xe8, 0x07,	/* 10 exited_at {100 s, 1000 ns} */
		0x5a, 0x01, 'e',		/* 11 exec_id */
	};
	static const uint8_t del_wire[] = {
		0x08, 0x07, 0x10, 0x89, 0x01, 0x1a, 0x05, 0x08, 0x64, 0x10, 0xe8, 0x07,
	};
	static const uint8_t wait_wire[] = { 0x08, 0x2a, 0x12, 0x05, 0x08, 0x64, 0x10, 0xe8, 0x07 };
	static const uint8_t conn_wire[] = { 0x08, 0x64, 0x10, 0x65, 0x1a, 0x01, '2' };
	uint8_t *buf;
	size_t len;

	(void)state;
	at.seconds = 100;
	at.nanos = 1000;
	st.id = "c1";
	st.pid = 42;
	st.status = CONTAINERD__V1__TYPES__STATUS__STOPPED;
	st.exit_status = 137;
	st.exited_at = &at;
	st.exec_id = "e";
	buf = pack(&st.base, &len);
	assert_bytes(buf, len, st_wire, sizeof(st_wire));
	st_got = containerd__task__v2__state_response__unpack(NULL, len, buf);
	assert_non_null(st_got);
	assert_int_equal(st_got->status, CONTAINERD__V1__TYPES__STATUS__STOPPED);
	assert_int_equal(st_got->exited_at->nanos, 1000);
	containerd__task__v2__state_response__free_unpacked(st_got, NULL);
	free(buf);

	del.pid = 7;
	del.exit_status = 137;
	del.exited_at = &at;
	buf = pack(&del.base, &len);
	assert_bytes(buf, len, del_wire, sizeof(del_wire));
	free(buf);

	wait.exit_status = 42;
	wait.exited_at = &at;
	buf = pack(&wait.base, &len);
	assert_bytes(buf, len, wait_wire, sizeof(wait_wire));
	free(buf);

	conn.shim_pid = 100;
	conn.task_pid = 101;
	conn.version = "2";
	buf = pack(&conn.base, &len);
	assert_bytes(buf, len, conn_wire, sizeof(conn_wire));
	free(buf);

	assert_int_equal(CONTAINERD__V1__TYPES__STATUS__UNKNOWN, 0);
	assert_int_equal(CONTAINERD__V1__TYPES__STATUS__CREATED, 1);
	assert_int_equal(CONTAINERD__V1__TYPES__STATUS__RUNNING, 2);
	assert_int_equal(CONTAINERD__V1__TYPES__STATUS__PAUSED, 4);
	assert_int_equal(CONTAINERD__V1__TYPES__STATUS__PAUSING, 5);
}

static void requests_decode_from_hand_encodings(void **state)
{
	static const uint8_t kill_wire[] = { 0x0a, 0x01, 'c', 0x12, 0x01, 'e', 0x18, 0x0f, 0x20, 0x01 };
	static const uint8_t resize_wire[] = { 0x0a, 0x01, 'c', 0x18, 0x50, 0x20, 0x18 };
	static const uint8_t shutdown_wire[] = { 0x0a, 0x01, 'c', 0x10, 0x01 };
	static const uint8_t close_wire[] = { 0x0a, 0x01, 'c', 0x18, 0x01 };
	static const uint8_t exec_wire[] = {
		0x0a, 0x01, 'c', 0x12, 0x02, 'e', '1', 0x18, 0x01,
		0x3a, 0x07, 0x0a, 0x01, 'p', 0x12, 0x02, '{', '}',	/* 7 spec Any */
	};
	Containerd__Task__V2__KillRequest *kill;
	Containerd__Task__V2__ResizePtyRequest *resize;
	Containerd__Task__V2__ShutdownRequest *shutdown;
	Containerd__Task__V2__CloseIORequest *close_io;
	Containerd__Task__V2__ExecProcessRequest *exec;

	(void)state;
	kill = containerd__task__v2__kill_request__unpack(NULL, sizeof(kill_wire), kill_wire);
	assert_non_null(kill);
	assert_string_equal(kill->exec_id, "e");
	assert_int_equal(kill->signal, 15);
	assert_true(kill->all);
	containerd__task__v2__kill_request__free_unpacked(kill, NULL);

	resize = containerd__task__v2__resize_pty_request__unpack(NULL, sizeof(resize_wire),
								  resize_wire);
	assert_non_null(resize);
	assert_int_equal(resize->width, 80);
	assert_int_equal(resize->height, 24);
	containerd__task__v2__resize_pty_request__free_unpacked(resize, NULL);

	shutdown = containerd__task__v2__shutdown_request__unpack(NULL, sizeof(shutdown_wire),
								  shutdown_wire);
	assert_non_null(shutdown);
	assert_true(shutdown->now);
	containerd__task__v2__shutdown_request__free_unpacked(shutdown, NULL);

	close_io = containerd__task__v2__close_iorequest__unpack(NULL, sizeof(close_wire),
								 close_wire);
	assert_non_null(close_io);
	assert_true(close_io->stdin);
	containerd__task__v2__close_iorequest__free_unpacked(close_io, NULL);

	exec = containerd__task__v2__exec_process_request__unpack(NULL, sizeof(exec_wire),
								  exec_wire);
	assert_non_null(exec);
	assert_string_equal(exec->exec_id, "e1");
	assert_true(exec->terminal);
	assert_string_equal(exec->spec->type_url, "p");
	assert_int_equal(exec->spec->value.len, 2);
	assert_memory_equal(exec->spec->value.data, "{}", 2);
	containerd__task__v2__exec_process_request__free_unpacked(exec, NULL);
}

static void update_request_annotations_round_trip(void **state)
{
	Containerd__Task__V2__UpdateTaskRequest__AnnotationsEntry a =
		CONTAINERD__TASK__V2__UPDATE_TASK_REQUEST__ANNOTATIONS_ENTRY__INIT;
	Containerd__Task__V2__UpdateTaskRequest__AnnotationsEntry b =
		CONTAINERD__TASK__V2__UPDATE_TASK_REQUEST__ANNOTATIONS_ENTRY__INIT;
	Containerd__Task__V2__UpdateTaskRequest__AnnotationsEntry *entries[] = { &a, &b };
	Containerd__Task__V2__UpdateTaskRequest req = CONTAINERD__TASK__V2__UPDATE_TASK_REQUEST__INIT;
	Containerd__Task__V2__UpdateTaskRequest *got;
	uint8_t *buf;
	size_t len;

	(void)state;
	a.key = "io.erovm.vm.cpus";
	a.value = "2";
	b.key = "k";
	b.value = "";
	req.id = "c1";
	req.n_annotations = 2;
	req.annotations = entries;
	buf = pack(&req.base, &len);
	got = containerd__task__v2__update_task_request__unpack(NULL, len, buf);
	assert_non_null(got);
	assert_int_equal(got->n_annotations, 2);
	assert_string_equal(got->annotations[0]->key, "io.erovm.vm.cpus");
	assert_string_equal(got->annotations[0]->value, "2");
	assert_string_equal(got->annotations[1]->key, "k");
	containerd__task__v2__update_task_request__free_unpacked(got, NULL);
	free(buf);
}

/* /tasks/exit as the shim forwards it: TaskExit in an Any in an Envelope. */
static void task_exit_event_in_envelope(void **state)
{
	Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Containerd__Events__TaskExit exit_event = CONTAINERD__EVENTS__TASK_EXIT__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	Containerd__Services__Events__Ttrpc__V1__Envelope env =
		CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
	Containerd__Services__Events__Ttrpc__V1__ForwardRequest fwd =
		CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
	Containerd__Services__Events__Ttrpc__V1__ForwardRequest *got;
	Containerd__Events__TaskExit *got_exit;
	static const uint8_t exit_wire[] = {
		0x0a, 0x02, 'c', '1', 0x12, 0x02, 'c', '1', 0x18, 0x07, 0x20, 0x2a,
		0x2a, 0x05, 0x08, 0x64, 0x10, 0xe8, 0x07,
	};
	uint8_t *exit_buf, *buf;
	size_t exit_len, len;

	(void)state;
	at.seconds = 100;
	at.nanos = 1000;
	exit_event.container_id = "c1";
	exit_event.id = "c1";
	exit_event.pid = 7;
	exit_event.exit_status = 42;
	exit_event.exited_at = &at;
	exit_buf = pack(&exit_event.base, &exit_len);
	assert_bytes(exit_buf, exit_len, exit_wire, sizeof(exit_wire));

	any.type_url = "containerd.events.TaskExit";
	any.value.data = exit_buf;
	any.value.len = exit_len;
	env.timestamp = &at;
	env.namespace_ = "default";
	env.topic = "/tasks/exit";
	env.event = &any;
	fwd.envelope = &env;
	buf = pack(&fwd.base, &len);

	got = containerd__services__events__ttrpc__v1__forward_request__unpack(NULL, len, buf);
	assert_non_null(got);
	assert_string_equal(got->envelope->namespace_, "default");
	assert_string_equal(got->envelope->topic, "/tasks/exit");
	assert_string_equal(got->envelope->event->type_url, "containerd.events.TaskExit");
	got_exit = containerd__events__task_exit__unpack(NULL, got->envelope->event->value.len,
							 got->envelope->event->value.data);
	assert_non_null(got_exit);
	assert_int_equal(got_exit->exit_status, 42);
	assert_int_equal(got_exit->exited_at->seconds, 100);
	containerd__events__task_exit__free_unpacked(got_exit, NULL);
	containerd__services__events__ttrpc__v1__forward_request__free_unpacked(got, NULL);
	free(buf);
	free(exit_buf);
}

/* The other events: field numbers by hand encodings. */
static void task_events_match_hand_encodings(void **state)
{
	Containerd__Events__TaskStart start = CONTAINERD__EVENTS__TASK_START__INIT;
	Containerd__Events__TaskExecStarted started = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
	Containerd__Events__TaskDelete del = CONTAINERD__EVENTS__TASK_DELETE__INIT;
	Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;
	Containerd__Events__TaskCreate create = CONTAINERD__EVENTS__TASK_CREATE__INIT;
	Containerd__Events__TaskOOM oom = CONTAINERD__EVENTS__TASK_OOM__INIT;
	static const uint8_t start_wire[] = { 0x0a, 0x01, 'c', 0x10, 0x05 };
	static const uint8_t started_wire[] = { 0x0a, 0x01, 'c', 0x12, 0x01, 'e', 0x18, 0x09 };
	static const uint8_t del_wire[] = { 0x0a, 0x01, 'c', 0x10, 0x05, 0x18, 0x01, 0x2a, 0x01, 'e' };
	static const uint8_t create_wire[] = {
		0x0a, 0x01, 'c', 0x12, 0x01, 'b',
		0x22, 0x08, 0x0a, 0x01, 'i', 0x12, 0x01, 'o', 0x20, 0x01,	/* 4 io */
		0x30, 0x05,							/* 6 pid */
	};
	static const uint8_t oom_wire[] = { 0x0a, 0x01, 'c' };
	uint8_t *buf;
	size_t len;

	(void)state;
	start.container_id = "c";
	start.pid = 5;
	buf = pack(&start.base, &len);
	assert_bytes(buf, len, start_wire, sizeof(start_wire));
	free(buf);

	started.container_id = "c";
	started.exec_id = "e";
	started.pid = 9;
	buf = pack(&started.base, &len);
	assert_bytes(buf, len, started_wire, sizeof(started_wire));
	free(buf);

	del.container_id = "c";
	del.pid = 5;
	del.exit_status = 1;
	del.id = "e";
	buf = pack(&del.base, &len);
	assert_bytes(buf, len, del_wire, sizeof(del_wire));
	free(buf);

	io.stdin = "i";
	io.stdout = "o";
	io.terminal = true;
	create.container_id = "c";
	create.bundle = "b";
	create.io = &io;
	create.pid = 5;
	buf = pack(&create.base, &len);
	assert_bytes(buf, len, create_wire, sizeof(create_wire));
	free(buf);

	oom.container_id = "c";
	buf = pack(&oom.base, &len);
	assert_bytes(buf, len, oom_wire, sizeof(oom_wire));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(create_task_request_round_trip),
		cmocka_unit_test(create_task_request_skips_unknown_fields),
		cmocka_unit_test(truncated_messages_are_refused),
		cmocka_unit_test(responses_match_hand_encodings),
		cmocka_unit_test(requests_decode_from_hand_encodings),
		cmocka_unit_test(update_request_annotations_round_trip),
		cmocka_unit_test(task_exit_event_in_envelope),
		cmocka_unit_test(task_events_match_hand_encodings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
