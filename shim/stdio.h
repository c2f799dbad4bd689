/*
 * stdio.h - a container process's stdio between containerd's side (the
 * FIFOs or files named in CreateTask/Exec) and the process's stdio
 * streams in the guest (proto/erovm_control.proto, Process service).
 *
 * containerd's IO strings: "" none; a path, a FIFO whose other end the
 * client holds; "file:///PATH", output appended to a file. "binary://"
 * loggers are refused. Rules kept here (containerd's runtime/v2 README):
 *
 *   stdin   the FIFO is opened read-write, so the client opening and
 *           closing its end never reads as an end of input: the end is
 *           CloseIO (stdio_close_stdin), after which what the FIFO still
 *           holds is forwarded and the guest stream closed (the guest
 *           then closes the process's stdin, or types ^D on a terminal).
 *   stdout, stderr
 *           the FIFO must have its reader (the client opens it before
 *           Create); the guest stream's bytes go to it until the guest
 *           closes the stream, after the process exited and its output
 *           was delivered; then the FIFO is closed, which is the client's
 *           end of output. A reader that goes away makes the rest of
 *           the output be discarded, never a stall of the guest.
 *   terminal
 *           stdout carries the terminal's output; stderr must be "".
 *
 * One thread per direction, each with blocking I/O. Functions other than
 * the threads' own are called by one thread (the shim's service loop).
 */
#ifndef EROVM_SHIM_STDIO_H
#define EROVM_SHIM_STDIO_H

#include <stdbool.h>
#include <stddef.h>

#include "shim/vm.h"

/* "ID.in" and so on: the stream ids fit the guest's 128 bytes. */
#define STDIO_STREAM_ID_MAX 80

struct stdio_paths {
	const char *stdin_path, *stdout_path, *stderr_path;	/* containerd's strings */
	bool terminal;
};

struct stdio;

/* How long an output FIFO may wait for containerd's reader to open it. */
#define STDIO_READER_WAIT_MS 3000

/*
 * Opens containerd's ends and connects the guest streams for process
 * @process_id of @vm (the stream ids go to @ids, "" for none, to put in
 * the guest request), and starts relaying. Returns NULL with @err.
 */
struct stdio *stdio_open(const struct vm *vm, const char *process_id,
			 const struct stdio_paths *paths, char ids[3][STDIO_STREAM_ID_MAX],
			 char *err, size_t err_size);

/* CloseIO: the process's stdin ends after what was written so far. */
void stdio_close_stdin(struct stdio *io);

/*
 * Waits until the guest closed the output streams and their bytes were
 * written out, then closes containerd's output ends. Any thread may call
 * it, once.
 */
void stdio_wait_output(struct stdio *io);

/* Stops every relay, closes everything and frees @io. NULL is ignored. */
void stdio_free(struct stdio *io);

#endif
