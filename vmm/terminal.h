/*
 * terminal.h - vmm-run's terminal while a guest console is attached to it.
 *
 * terminal_make_raw() puts a tty in raw mode for the console: no line
 * editing, echo or signal keys on the host side (Ctrl-C, Ctrl-Z, Ctrl-\
 * and Ctrl-S/Ctrl-Q reach the guest, whose own tty acts on them), 8-bit
 * input, no CR/NL translation of input, a read returns as soon as one
 * byte is there. Output processing is left as it was, as QEMU's stdio
 * does: the guest's tty already sends "\r\n", and the command's bare
 * "\n" on ttyS1 and vmm-run's own messages still start at column 0.
 *
 * The saved settings come back on every way out of the process that
 * runs code: terminal_restore() (idempotent), exit() and a return from
 * main (atexit), and the signals that end it by default (SIGHUP, SIGINT,
 * SIGQUIT, SIGTERM, SIGPIPE, SIGALRM, and SIGABRT, SIGSEGV, SIGBUS,
 * SIGFPE, SIGILL for crashes): the handler restores the terminal, then
 * re-raises the signal with its default action, so the exit status still
 * tells which signal it was. Signals set to be ignored stay ignored.
 * Only SIGKILL (and a stop signal) leave the terminal raw.
 *
 * Window size: terminal_get_size() reads it (TIOCGWINSZ); SIGWINCH writes
 * to the eventfd terminal_resize_eventfd() returns, so a loop (io_loop)
 * can watch it and pass the new size on.
 *
 * Threads: one terminal per process (the state is static); call
 * make_raw and resize_eventfd from the main thread before starting
 * others.
 */
#ifndef EROVM_TERMINAL_H
#define EROVM_TERMINAL_H

#include <stdint.h>

/*
 * Saves tty @fd's settings and puts it in raw mode. Returns 0, or a
 * negative errno (e.g. -ENOTTY) leaving the terminal untouched.
 */
int terminal_make_raw(int fd);

/* Puts the saved settings back, if raw mode is on. Async-signal-safe. */
void terminal_restore(void);

/* The window size of tty @fd. Returns 0 or a negative errno. */
int terminal_get_size(int fd, uint16_t *cols, uint16_t *rows);

/*
 * Returns an eventfd (non-blocking) that every SIGWINCH increments,
 * installing the handler the first time; or a negative errno.
 */
int terminal_resize_eventfd(void);

#endif
