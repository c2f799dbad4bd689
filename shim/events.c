/*
 * Task events to containerd over ttrpc. See events.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "containerd/services/events/ttrpc/v1/events.pb-c.h"
#include "shim/events.h"
#include "shim/text.h"
#include "ttrpc/ttrpc.h"

#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"

struct events {
	char *path;
	char *ns;
	struct ttrpc_client *client;
};

struct events *events_new(const char *address, const char *ns)
{
	struct events *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return NULL;
	if (address && !strncmp(address, "unix://", 7))
		address += 7;
	ev->path = strdup(address ? address : "");
	ev->ns = strdup(ns ? ns : "");
	if (!ev->path || !ev->ns) {
		events_free(ev);
		return NULL;
	}
	return ev;
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	ttrpc_client_free(ev->client);
	free(ev->path);
	free(ev->ns);
	free(ev);
}

static int events_connect(struct events *ev)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(ev->path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, ev->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	ev->client = ttrpc_client_new(fd);
	if (!ev->client) {
		close(fd);
		return -ENOMEM;
	}
	return 0;
}

void events_publish(struct events *ev, const char *topic, const ProtobufCMessage *event)
{
	Containerd__Services__Events__Ttrpc__V1__ForwardRequest request =
		CONTAINERD__SERVICES__EVENTS__TTRPC__V1__FORWARD_REQUEST__INIT;
	Containerd__Services__Events__Ttrpc__V1__Envelope envelope =
		CONTAINERD__SERVICES__EVENTS__TTRPC__V1__ENVELOPE__INIT;
	Google__Protobuf__Timestamp stamp = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	struct ttrpc_result result = { 0 };
	struct timespec now;
	uint8_t *packed;
	int ret = 0;

	if (!ev || !ev->path[0])
		return;
	packed = malloc(protobuf_c_message_get_packed_size(event) + 1);
	if (!packed) {
		shim_log("event %s: out of memory", topic);
		return;
	}
	any.type_url = (char *)event->descriptor->name;
	any.value.len = protobuf_c_message_pack(event, packed);
	any.value.data = packed;
	clock_gettime(CLOCK_REALTIME, &now);
	stamp.seconds = now.tv_sec;
	stamp.nanos = (int32_t)now.tv_nsec;
	envelope.timestamp = &stamp;
	envelope.namespace_ = ev->ns;
	envelope.topic = (char *)topic;
	envelope.event = &any;
	request.envelope = &envelope;

	/* A connection containerd closed is made again, once. */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!ev->client && (ret = events_connect(ev)) < 0)
			break;
		ret = ttrpc_client_call_message(ev->client, EVENTS_SERVICE, "Forward",
						&request.base, &result, EVENTS_CALL_TIMEOUT_MS);
		if (ret == 0)
			break;
		ttrpc_client_free(ev->client);
		ev->client = NULL;
		if (ret == -ETIMEDOUT)
			break;
	}
	if (ret < 0)
		shim_log("event %s: not published to %s: %s", topic, ev->path, strerror(-ret));
	else if (result.code != TTRPC_OK)
		shim_log("event %s: containerd answered %s: %s", topic,
			 ttrpc_code_name(result.code), result.message);
	ttrpc_result_clear(&result);
	free(packed);
}
