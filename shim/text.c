#include "shim/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
