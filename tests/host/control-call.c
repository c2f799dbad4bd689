/*
 * control-call: talks to a guest's control service through a hybrid vsock
 * socket in ways erovm-ctl never does, for tests:
 *
 *   control-call SOCKET SERVICE METHOD [ID]
 *       one call whose request carries ID as field 1, a string (the shape
 *       of every Process request but Start); prints "CODE: MESSAGE".
 *   control-call SOCKET --late-stream DELAY_MS|never ID
 *       sends Start for `echo late-output` with stdout on stream ID.out,
 *       connects that stream only DELAY_MS after Start went out (or
 *       never), and prints Start's "CODE: MESSAGE" and then the output.
 *
 *   control-call SOCKET stream ID [-i]
 *       connects stream ID and copies it to stdout until the guest closes
 *       it; with -i, also stdin to the stream, then shuts its write side.
 *   control-call SOCKET process wait|delete|resize|signal ID [WIDTH HEIGHT|SIGNAL]
 *       Process.Wait and Delete (print "exit N" too), ResizePty, Signal.
 *   control-call SOCKET container create ID PROCESS_ID CONFIG_FILE [OPTION]...
 *   control-call SOCKET container exec ID PROCESS_ID PROCESS_FILE [OPTION]...
 *       OPTION: -t WIDTHxHEIGHT (a terminal), -0 STREAM (stdin), -1 STREAM
 *       (stdout), -2 STREAM (stderr), -f PATH:MODE:FILE (a bundle file,
 *       MODE octal; create only). Prints "pid N" too.
 *   control-call SOCKET container start|pids|delete ID
 *   control-call SOCKET container kill ID SIGNAL [all]
 *   control-call SOCKET container update ID RESOURCES_FILE
 *       The Container service's calls; pids prints "pids N...".
 *
 * CODE is as ttrpc_code_name() says. Exits 0 when it got its answers, 1
 * otherwise (2: bad usage).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctl/hybrid_vsock.h"
#include "erovm_control.pb-c.h"
#include "ttrpc/ttrpc.h"
#include "vmm/guest_abi.h"

static int connect_port(const char *socket, unsigned int port)
{
	char err[512];
	int fd = hybrid_vsock_connect(socket, port, 10000, err, sizeof(err));

	if (fd < 0)
		fprintf(stderr, "control-call: %s\n", err);
	return fd;
}

static int raw_call(struct ttrpc_client *client, const char *service, const char *method,
		    const char *id)
{
	Erovm__Control__V1__WaitRequest request = EROVM__CONTROL__V1__WAIT_REQUEST__INIT;
	struct ttrpc_result result = { 0 };
	int ret;

	request.id = (char *)id;
	ret = ttrpc_client_call_message(client, service, method, &request.base, &result, 30000);
	if (ret < 0) {
		fprintf(stderr, "control-call: %s\n", strerror(-ret));
		return 1;
	}
	printf("%s: %s\n", ttrpc_code_name(result.code), result.message);
	ttrpc_result_clear(&result);
	return 0;
}

static int late_stream(struct ttrpc_client *client, const char *socket, const char *delay,
		       const char *id)
{
	Erovm__Control__V1__StartRequest request = EROVM__CONTROL__V1__START_REQUEST__INIT;
	char *args[] = { "echo", "late-output" }, stream[GUEST_STREAM_ID_MAX + 2], buf[256];
	struct ttrpc_result result = { 0 };
	uint8_t payload[512];
	uint32_t call;
	ssize_t n;
	int fd = -1, ret;

	snprintf(stream, sizeof(stream), "%s.out", id);
	request.id = (char *)id;
	request.n_args = 2;
	request.args = args;
	request.stdout = stream;
	erovm__control__v1__start_request__pack(&request, payload);
	ret = ttrpc_client_send(client, GUEST_CONTROL_SERVICE_PROCESS, "Start", payload,
				erovm__control__v1__start_request__get_packed_size(&request), &call);
	if (ret < 0) {
		fprintf(stderr, "control-call: Start: %s\n", strerror(-ret));
		return 1;
	}
	if (strcmp(delay, "never")) {
		struct timespec pause = { atoi(delay) / 1000, atoi(delay) % 1000 * 1000000L };

		nanosleep(&pause, NULL);
		fd = connect_port(socket, GUEST_VSOCK_STREAM_PORT);
		if (fd < 0)
			return 1;
		strcat(stream, "\n");
		if (write(fd, stream, strlen(stream)) != (ssize_t)strlen(stream))
			return 1;
	}
	ret = ttrpc_client_wait(client, call, &result, 30000);
	if (ret < 0) {
		fprintf(stderr, "control-call: Start: %s\n", strerror(-ret));
		return 1;
	}
	printf("%s: %s\n", ttrpc_code_name(result.code), result.message);
	ttrpc_result_clear(&result);
	fflush(stdout);
	while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		if (write(STDOUT_FILENO, buf, (size_t)n) != n)
			return 1;
	if (fd >= 0)
		close(fd);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: control-call SOCKET SERVICE METHOD [ID]\n"
			"       control-call SOCKET --late-stream DELAY_MS|never ID\n"
			"       control-call SOCKET stream ID [-i]\n"
			"       control-call SOCKET process wait|delete|resize|signal ID [ARGS]\n"
			"       control-call SOCKET container METHOD ID [ARGS]\n");
	return 2;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int stream(const char *socket, const char *id, bool input)
{
	char line[GUEST_STREAM_ID_MAX + 2], buf[16384];
	bool in_open = input;
	int fd = connect_port(socket, GUEST_VSOCK_STREAM_PORT);

	if (fd < 0)
		return 1;
	snprintf(line, sizeof(line), "%s\n", id);
	if (write_all(fd, line, strlen(line)) < 0)
		return 1;
	for (;;) {
		struct pollfd fds[2] = { { .fd = fd, .events = POLLIN },
					 { .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN } };
		ssize_t n;

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			return 1;
		if (fds[1].revents) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n > 0 && write_all(fd, buf, (size_t)n) < 0)
				return 1;
			if (n <= 0) {
				in_open = false;
				shutdown(fd, SHUT_WR);
			}
		}
		if (fds[0].revents) {
			n = read(fd, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				return 1;
		}
	}
	close(fd);
	return 0;
}

/* Reads FILE whole into @data. */
static int read_file(const char *path, ProtobufCBinaryData *data)
{
	FILE *f = fopen(path, "rb");
	long size;

	if (!f || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fprintf(stderr, "control-call: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	data->len = (size_t)size;
	data->data = malloc(data->len + 1);
	if (!data->data || fread(data->data, 1, data->len, f) != data->len) {
		fprintf(stderr, "control-call: reading %s failed\n", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

/* One call; prints "CODE: MESSAGE" and leaves an OK answer's payload in @result. */
static int call(struct ttrpc_client *client, const char *service, const char *method,
		const ProtobufCMessage *request, struct ttrpc_result *result)
{
	int ret = ttrpc_client_call_message(client, service, method, request, result, 120000);

	if (ret < 0) {
		fprintf(stderr, "control-call: %s: %s\n", method, strerror(-ret));
		return 1;
	}
	printf("%s: %s\n", ttrpc_code_name(result->code), result->message);
	return 0;
}

static void print_pid(const struct ttrpc_result *result)
{
	Erovm__Control__V1__StartResponse *response;

	if (result->code)
		return;
	response = erovm__control__v1__start_response__unpack(NULL, result->payload_len,
							       result->payload);
	if (response) {
		printf("pid %u\n", response->pid);
		erovm__control__v1__start_response__free_unpacked(response, NULL);
	}
}

static int process(struct ttrpc_client *client, int argc, char **argv)
{
	Erovm__Control__V1__ResizePtyRequest resize = EROVM__CONTROL__V1__RESIZE_PTY_REQUEST__INIT;
	Erovm__Control__V1__SignalRequest signal = EROVM__CONTROL__V1__SIGNAL_REQUEST__INIT;
	Erovm__Control__V1__WaitRequest wait = EROVM__CONTROL__V1__WAIT_REQUEST__INIT;
	struct ttrpc_result result = { 0 };
	int ret;

	if (argc == 2 && (!strcmp(argv[0], "wait") || !strcmp(argv[0], "delete"))) {
		/* DeleteRequest has WaitRequest's shape. */
		wait.id = argv[1];
		ret = call(client, GUEST_CONTROL_SERVICE_PROCESS, argv[0][0] == 'w' ? "Wait" : "Delete",
			   &wait.base, &result);
		if (!ret && !result.code) {
			Erovm__Control__V1__WaitResponse *response =
				erovm__control__v1__wait_response__unpack(NULL, result.payload_len,
									  result.payload);

			if (response)
				printf("exit %u\n", response->exit_status);
			if (response)
				erovm__control__v1__wait_response__free_unpacked(response, NULL);
		}
	} else if (argc == 4 && !strcmp(argv[0], "resize")) {
		resize.id = argv[1];
		resize.width = (uint32_t)atoi(argv[2]);
		resize.height = (uint32_t)atoi(argv[3]);
		ret = call(client, GUEST_CONTROL_SERVICE_PROCESS, "ResizePty", &resize.base, &result);
	} else if (argc == 3 && !strcmp(argv[0], "signal")) {
		signal.id = argv[1];
		signal.signal = (uint32_t)atoi(argv[2]);
		ret = call(client, GUEST_CONTROL_SERVICE_PROCESS, "Signal", &signal.base, &result);
	} else {
		return usage();
	}
	ttrpc_result_clear(&result);
	return ret;
}

/* The options of create and exec, into the request's fields. */
struct launch_options {
	bool terminal;
	uint32_t width, height;
	char *streams[3];
	Erovm__Control__V1__BundleFile **files;
	size_t n_files;
};

static int launch_options(int argc, char **argv, struct launch_options *o)
{
	o->streams[0] = o->streams[1] = o->streams[2] = "";
	for (int i = 0; i < argc; i += 2) {
		if (i + 1 == argc)
			return -1;
		if (!strcmp(argv[i], "-t")) {
			o->terminal = true;
			if (sscanf(argv[i + 1], "%ux%u", &o->width, &o->height) != 2)
				return -1;
		} else if (argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '2' && !argv[i][2]) {
			o->streams[argv[i][1] - '0'] = argv[i + 1];
		} else if (!strcmp(argv[i], "-f")) {
			Erovm__Control__V1__BundleFile *f = calloc(1, sizeof(*f));
			char *mode = strchr(argv[i + 1], ':'), *file = mode ? strchr(mode + 1, ':') : NULL;

			o->files = realloc(o->files, (o->n_files + 1) * sizeof(*o->files));
			if (!f || !o->files || !file)
				return -1;
			erovm__control__v1__bundle_file__init(f);
			*mode = *file = '\0';
			f->path = argv[i + 1];
			f->mode = (uint32_t)strtoul(mode + 1, NULL, 8);
			if (read_file(file + 1, &f->data) < 0)
				return -1;
			o->files[o->n_files++] = f;
		} else {
			return -1;
		}
	}
	return 0;
}

static int container(struct ttrpc_client *client, int argc, char **argv)
{
	Erovm__Control__V1__CreateContainerRequest create =
		EROVM__CONTROL__V1__CREATE_CONTAINER_REQUEST__INIT;
	Erovm__Control__V1__ExecContainerRequest exec = EROVM__CONTROL__V1__EXEC_CONTAINER_REQUEST__INIT;
	Erovm__Control__V1__ContainerRequest plain = EROVM__CONTROL__V1__CONTAINER_REQUEST__INIT;
	Erovm__Control__V1__KillContainerRequest kill = EROVM__CONTROL__V1__KILL_CONTAINER_REQUEST__INIT;
	Erovm__Control__V1__UpdateContainerRequest update =
		EROVM__CONTROL__V1__UPDATE_CONTAINER_REQUEST__INIT;
	const char *service = GUEST_CONTROL_SERVICE_CONTAINER;
	struct launch_options o = { 0 };
	struct ttrpc_result result = { 0 };
	int ret;

	if (argc < 2)
		return usage();
	if (argc >= 4 && !strcmp(argv[0], "create")) {
		if (launch_options(argc - 4, argv + 4, &o) < 0 || read_file(argv[3], &create.config) < 0)
			return usage();
		create.id = argv[1];
		create.process_id = argv[2];
		create.terminal = o.terminal;
		create.width = o.width;
		create.height = o.height;
		create.stdin = o.streams[0];
		create.stdout = o.streams[1];
		create.stderr = o.streams[2];
		create.files = o.files;
		create.n_files = o.n_files;
		ret = call(client, service, "Create", &create.base, &result);
		print_pid(&result);
	} else if (argc >= 4 && !strcmp(argv[0], "exec")) {
		if (launch_options(argc - 4, argv + 4, &o) < 0 || o.n_files ||
		    read_file(argv[3], &exec.process) < 0)
			return usage();
		exec.id = argv[1];
		exec.process_id = argv[2];
		exec.terminal = o.terminal;
		exec.width = o.width;
		exec.height = o.height;
		exec.stdin = o.streams[0];
		exec.stdout = o.streams[1];
		exec.stderr = o.streams[2];
		ret = call(client, service, "Exec", &exec.base, &result);
		print_pid(&result);
	} else if (argc == 2 && (!strcmp(argv[0], "start") || !strcmp(argv[0], "delete"))) {
		plain.id = argv[1];
		ret = call(client, service, argv[0][0] == 's' ? "Start" : "Delete", &plain.base, &result);
	} else if (argc == 2 && !strcmp(argv[0], "pids")) {
		plain.id = argv[1];
		ret = call(client, service, "Pids", &plain.base, &result);
		if (!ret && !result.code) {
			Erovm__Control__V1__PidsResponse *response =
				erovm__control__v1__pids_response__unpack(NULL, result.payload_len,
									  result.payload);

			printf("pids");
			for (size_t i = 0; response && i < response->n_pids; i++)
				printf(" %u", response->pids[i]);
			printf("\n");
			if (response)
				erovm__control__v1__pids_response__free_unpacked(response, NULL);
		}
	} else if ((argc == 3 || (argc == 4 && !strcmp(argv[3], "all"))) && !strcmp(argv[0], "kill")) {
		kill.id = argv[1];
		kill.signal = (uint32_t)atoi(argv[2]);
		kill.all = argc == 4;
		ret = call(client, service, "Kill", &kill.base, &result);
	} else if (argc == 3 && !strcmp(argv[0], "update")) {
		update.id = argv[1];
		if (read_file(argv[2], &update.resources) < 0)
			return usage();
		ret = call(client, service, "Update", &update.base, &result);
	} else {
		return usage();
	}
	ttrpc_result_clear(&result);
	return ret;
}

int main(int argc, char **argv)
{
	struct ttrpc_client *client;
	int fd, ret;

	if (argc >= 4 && !strcmp(argv[2], "stream")) {
		if (argc > 5 || (argc == 5 && strcmp(argv[4], "-i")))
			return usage();
		return stream(argv[1], argv[3], argc == 5);
	}
	if (argc < 4 || (!strcmp(argv[2], "--late-stream") && argc != 5) ||
	    (argc > 5 && strcmp(argv[2], "process") && strcmp(argv[2], "container")))
		return usage();
	fd = connect_port(argv[1], GUEST_VSOCK_CONTROL_PORT);
	if (fd < 0)
		return 1;
	client = ttrpc_client_new(fd);
	if (!client)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[2], "--late-stream"))
		ret = late_stream(client, argv[1], argv[3], argv[4]);
	else if (!strcmp(argv[2], "process"))
		ret = process(client, argc - 3, argv + 3);
	else if (!strcmp(argv[2], "container"))
		ret = container(client, argc - 3, argv + 3);
	else
		ret = raw_call(client, argv[2], argv[3], argc == 5 ? argv[4] : "");
	ttrpc_client_free(client);
	return ret;
}
