#include "shim/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void shim_text_append(struct shim_text *t, const char *s, size_t n)
{
	if (t->out_of_memory)
		return;
	if (n + 1 > t->size - t->len) {
		size_t size = t->size ? t->size : 256;
		char *data;

		while (n + 1 > size - t->len)
			size *= 2;
		data = realloc(t->data, size);
		if (!data) {
			t->out_of_memory = true;
			return;
		}
		t->data = data;
		t->size = size;
	}
	memcpy(t->data + t->len, s, n);
	t->len += n;
	t->data[t->len] = '\0';
}

void shim_text_puts(struct shim_text *t, const char *s)
{
	shim_text_append(t, s, strlen(s));
}

int shim_error(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return -1;
}

void shim_log(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "erovm-shim[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	/* One write: lines from several threads do not mix. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* Nowhere else to report it. */
	}
}
