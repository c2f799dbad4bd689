/*
 * events.h - publishing task events to containerd: a ttrpc call
 * containerd.services.events.ttrpc.v1.Events/Forward on TTRPC_ADDRESS,
 * with an Envelope{timestamp, namespace, topic, event Any} whose Any
 * type_url is the event's bare message name (containerd.events.TaskExit).
 *
 * Events go out in the order they are published, each waiting for
 * containerd's answer (bounded): the order create, start, exec-added,
 * exec-started, exit, delete is the order of the calls. A failure is
 * logged and the connection made again for the next event; it never
 * fails the task operation that published it.
 *
 * One thread (the shim's service loop) uses a struct events.
 */
#ifndef EROVM_SHIM_EVENTS_H
#define EROVM_SHIM_EVENTS_H

#include <protobuf-c/protobuf-c.h>

#define EVENTS_CALL_TIMEOUT_MS 5000

struct events;

/* @address: TTRPC_ADDRESS ("unix://" optional); NULL or "" publishes nothing. */
struct events *events_new(const char *address, const char *ns);
void events_free(struct events *ev);

/* Publishes @event (a containerd.events message) on @topic. */
void events_publish(struct events *ev, const char *topic, const ProtobufCMessage *event);

#endif
