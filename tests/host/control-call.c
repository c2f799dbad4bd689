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
 * CODE is as ttrpc_code_name() says. Exits 0 when it got its answers, 1
 * otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	struct ttrpc_client *client;
	int fd, ret;

	if (argc < 4 || argc > 5 || (!strcmp(argv[2], "--late-stream") && argc != 5)) {
		fprintf(stderr, "usage: control-call SOCKET SERVICE METHOD [ID]\n"
				"       control-call SOCKET --late-stream DELAY_MS|never ID\n");
		return 2;
	}
	fd = connect_port(argv[1], GUEST_VSOCK_CONTROL_PORT);
	if (fd < 0)
		return 1;
	client = ttrpc_client_new(fd);
	if (!client)
		return 1;
	if (!strcmp(argv[2], "--late-stream"))
		ret = late_stream(client, argv[1], argv[3], argv[4]);
	else
		ret = raw_call(client, argv[2], argv[3], argc == 5 ? argv[4] : "");
	ttrpc_client_free(client);
	return ret;
}
