#include "vmm/bootconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static bool valid_param(const char *param)
{
	size_t len = strlen(param);

	if (len == 0 || param[0] == '.' || param[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = param[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return false;
		if (c == '.' && param[i + 1] == '.')
			return false;
	}
	return true;
}

static bool valid_value(const char *value)
{
	if (!*value)
		return false;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\'' || *p == '#')
			return false;
	return true;
}

/* Appends @s to @buf at *@len if it fits in @limit bytes. */
static bool append(char *buf, size_t limit, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (n > limit - *len)
		return false;
	memcpy(buf + *len, s, n);
	*len += n;
	return true;
}

static void put_le32(char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (char)(v >> (8 * i));
}

int bootconfig_build(char *buf, size_t size, const char *param,
		     const char *const values[], unsigned int nr_values)
{
	size_t limit = size < BOOTCONFIG_DATA_MAX ? size : BOOTCONFIG_DATA_MAX;
	size_t len = 0, padded;
	uint32_t checksum = 0;

	if (!valid_param(param) || nr_values == 0)
		return -EINVAL;
	for (unsigned int i = 0; i < nr_values; i++)
		if (!valid_value(values[i]))
			return -EINVAL;

	if (!append(buf, limit, &len, "kernel.") || !append(buf, limit, &len, param) ||
	    !append(buf, limit, &len, " = "))
		return -E2BIG;
	for (unsigned int i = 0; i < nr_values; i++)
		if (!append(buf, limit, &len, i ? ", \"" : "\"") ||
		    !append(buf, limit, &len, values[i]) || !append(buf, limit, &len, "\""))
			return -E2BIG;
	if (!append(buf, limit, &len, "\n"))
		return -E2BIG;

	/* At least one NUL ends the text; padding reaches a multiple of 4. */
	padded = (len + 1 + 3) & ~(size_t)3;
	if (padded > BOOTCONFIG_DATA_MAX || padded + 8 + BOOTCONFIG_MAGIC_LEN > size)
		return -E2BIG;
	memset(buf + len, 0, padded - len);
	for (size_t i = 0; i < padded; i++)
		checksum += (unsigned char)buf[i];
	put_le32(buf + padded, (uint32_t)padded);
	put_le32(buf + padded + 4, checksum);
	memcpy(buf + padded + 8, BOOTCONFIG_MAGIC, BOOTCONFIG_MAGIC_LEN);
	return (int)(padded + 8 + BOOTCONFIG_MAGIC_LEN);
}
