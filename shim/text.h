/*
 * text.h - what the shim's modules share for building strings and
 * reporting errors.
 *
 * A struct shim_text grows as text is appended and stays NUL-terminated;
 * a failed allocation sticks (out_of_memory), so a caller appends freely
 * and checks once at the end. Zero-initialized it is empty; the caller
 * frees data.
 */
#ifndef EROVM_SHIM_TEXT_H
#define EROVM_SHIM_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct shim_text {
	char *data;
	size_t len, size;
	bool out_of_memory;
};

/* Appends the @n bytes at @s. */
void shim_text_append(struct shim_text *t, const char *s, size_t n);

/* Appends the string @s. */
void shim_text_puts(struct shim_text *t, const char *s);

/*
 * Formats an error message into @err (when @err_size > 0) and returns -1,
 * so a caller can write `return shim_error(err, err_size, ...)`.
 */
int shim_error(char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Logs one line on stderr: the shim's log (containerd's "log" FIFO once
 * the shim serves, so it lands in containerd's log).
 */
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
