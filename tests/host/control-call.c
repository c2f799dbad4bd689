/*
 * control-call: makes one raw call to a guest's control service through a
 * hybrid vsock socket and prints its status, for tests of what erovm-ctl
 * never asks (unknown services and methods, unknown process ids).
 *
 *   control-call SOCKET SERVICE METHOD [ID]
 *
 * The request carries ID as field 1, a string: the shape of every Process
 * request but Start. Prints "CODE: MESSAGE" (CODE as in ttrpc_code_name)
 * and exits 0 when the call got an answer, 1 otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "ctl/hybrid_vsock.h"
#include "proto/erovm_control.pb-c.h"
#include "ttrpc/ttrpc.h"
#include "vmm/guest_abi.h"

int main(int argc, char **argv)
{
	Erovm__Control__V1__WaitRequest request = EROVM__CONTROL__V1__WAIT_REQUEST__INIT;
	struct ttrpc_result result = { 0 };
	struct ttrpc_client *client;
	char err[512];
	int fd, ret;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: control-call SOCKET SERVICE METHOD [ID]\n");
		return 2;
	}
	fd = hybrid_vsock_connect(argv[1], GUEST_VSOCK_CONTROL_PORT, 10000, err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "control-call: %s\n", err);
		return 1;
	}
	client = ttrpc_client_new(fd);
	if (!client)
		return 1;
	request.id = argc == 5 ? argv[4] : "";
	ret = ttrpc_client_call_message(client, argv[2], argv[3], &request.base, &result, 30000);
	ttrpc_client_free(client);
	if (ret < 0) {
		fprintf(stderr, "control-call: %s\n", strerror(-ret));
		return 1;
	}
	printf("%s: %s\n", ttrpc_code_name(result.code), result.message);
	ttrpc_result_clear(&result);
	return 0;
}
