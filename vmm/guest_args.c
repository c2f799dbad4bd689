#include "vmm/guest_args.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "vmm/guest_abi.h"

static const char hex_digits[] = "0123456789ABCDEF";

/* Bytes that pass the kernel command line unchanged and mean nothing to it. */
static bool is_plain(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || (c && strchr("-_./:,=+@", c));
}

/* Value of an upper-case hex digit, or -1. */
static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Length of @arg's encoding. */
static size_t encoded_len(const char *arg)
{
	size_t len;

	if (!*arg)
		return 1;
	len = 3; /* the first byte is always escaped */
	for (const unsigned char *p = (const unsigned char *)arg + 1; *p; p++)
		len += is_plain(*p) ? 1 : 3;
	return len;
}

static char *put_escaped(char *out, unsigned char c)
{
	*out++ = '%';
	*out++ = hex_digits[c >> 4];
	*out++ = hex_digits[c & 0xf];
	return out;
}

/* Writes @arg's encoding, encoded_len(@arg) bytes, at @out. */
static char *put_encoded(char *out, const char *arg)
{
	const unsigned char *p = (const unsigned char *)arg;

	if (!*p) {
		*out++ = '%';
		return out;
	}
	out = put_escaped(out, *p++);
	for (; *p; p++) {
		if (is_plain(*p))
			*out++ = (char)*p;
		else
			out = put_escaped(out, *p);
	}
	return out;
}

int guest_args_encode(char *buf, size_t size, char *const argv[], int argc)
{
	size_t len, need;
	char *out;

	if (argc < 1 || size > INT_MAX)
		return -EINVAL;
	len = strnlen(buf, size);
	if (len == size)
		return -EINVAL;
	if (argc > GUEST_ARGS_MAX)
		return -E2BIG;

	/* Measure first, so a line that does not fit is left untouched. */
	need = len + (len ? 3 : 2); /* " --" or "--" */
	for (int i = 0; i < argc; i++) {
		if (!argv[i])
			return -EINVAL;
		need += 1 + encoded_len(argv[i]);
		if (need >= size)
			return -ENOSPC;
	}

	out = buf + len;
	if (len)
		*out++ = ' ';
	*out++ = '-';
	*out++ = '-';
	for (int i = 0; i < argc; i++) {
		*out++ = ' ';
		out = put_encoded(out, argv[i]);
	}
	*out = '\0';
	return (int)need;
}

/* Checks @word against the encoding; see vmm/guest_abi.h. */
static bool is_valid_word(const char *word)
{
	if (word[0] != '%')
		return false;
	if (!word[1])
		return true; /* the empty argument */
	for (const char *p = word; *p;) {
		if (*p == '%') {
			int high = hex_value(p[1]);
			int low = high < 0 ? -1 : hex_value(p[2]);

			if (low < 0 || (high == 0 && low == 0))
				return false;
			p += 3;
		} else if (is_plain((unsigned char)*p)) {
			p++;
		} else {
			return false;
		}
	}
	return true;
}

int guest_args_decode(char *word)
{
	char *out = word;

	if (!is_valid_word(word))
		return -EINVAL;
	if (!word[1]) {
		word[0] = '\0';
		return 0;
	}
	for (const char *p = word; *p;) {
		if (*p == '%') {
			*out++ = (char)(hex_value(p[1]) << 4 | hex_value(p[2]));
			p += 3;
		} else {
			*out++ = *p++;
		}
	}
	*out = '\0';
	return 0;
}

int guest_args_add_flag(char *buf, size_t size, const char *flag)
{
	size_t len = strnlen(buf, size), flag_len = strlen(flag);
	size_t sep = len ? 1 : 0;

	if (len == size || size > INT_MAX)
		return -EINVAL;
	if (len + sep + flag_len >= size)
		return -ENOSPC;
	if (sep)
		buf[len] = ' ';
	memcpy(buf + len + sep, flag, flag_len + 1);
	return (int)(len + sep + flag_len);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

bool guest_args_has_flag(const char *cmdline, const char *flag)
{
	size_t flag_len = strlen(flag);
	const char *p = cmdline;

	for (;;) {
		bool in_quotes = false, matches = true;
		size_t n = 0, dashes = 0;

		while (is_blank(*p))
			p++;
		if (!*p)
			return false;
		/* One word, quotes stripped, compared with @flag as it goes. */
		for (; *p && (in_quotes || !is_blank(*p)); p++) {
			if (*p == '"') {
				in_quotes = !in_quotes;
				continue;
			}
			if (n >= flag_len || *p != flag[n])
				matches = false;
			dashes += *p == '-';
			n++;
		}
		if (matches && n == flag_len)
			return true;
		/* The kernel's own parameters end at a bare "--". */
		if (n == 2 && dashes == 2)
			return false;
	}
}
