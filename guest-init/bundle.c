/* The pure checks of the Container service. See bundle.h. */
#include "guest-init/bundle.h"

#include <string.h>

const char *bundle_check_path(const char *path)
{
	size_t len = strlen(path);
	const char *component = path;

	if (!len)
		return "is empty";
	if (len > BUNDLE_PATH_MAX)
		return "is too long";
	if (path[0] == '/')
		return "is absolute";
	for (;;) {
		const char *end = strchrnul(component, '/');
		size_t n = (size_t)(end - component);

		if (n == 0)
			return "has an empty component";
		if ((n == 1 && component[0] == '.') || (n == 2 && !strncmp(component, "..", 2)))
			return "has a \".\" or \"..\" component";
		if (component == path && ((n == strlen(BUNDLE_CONFIG) && !*end &&
					   !strncmp(component, BUNDLE_CONFIG, n)) ||
					  (n == strlen(BUNDLE_PRIVATE_DIR) &&
					   !strncmp(component, BUNDLE_PRIVATE_DIR, n))))
			return "names the bundle's own " BUNDLE_CONFIG " or " BUNDLE_PRIVATE_DIR;
		if (!*end)
			return NULL;
		component = end + 1;
	}
}

/* A recursive-descent JSON syntax check over [pos, end). */
struct json_scan {
	const uint8_t *pos, *end;
};

static void skip_space(struct json_scan *s)
{
	while (s->pos < s->end &&
	       (*s->pos == ' ' || *s->pos == '\t' || *s->pos == '\n' || *s->pos == '\r'))
		s->pos++;
}

static bool take(struct json_scan *s, char c)
{
	if (s->pos < s->end && *s->pos == (uint8_t)c) {
		s->pos++;
		return true;
	}
	return false;
}

static bool take_word(struct json_scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->pos) < n || memcmp(s->pos, word, n))
		return false;
	s->pos += n;
	return true;
}

static bool is_digit(struct json_scan *s)
{
	return s->pos < s->end && *s->pos >= '0' && *s->pos <= '9';
}

static bool scan_digits(struct json_scan *s)
{
	if (!is_digit(s))
		return false;
	while (is_digit(s))
		s->pos++;
	return true;
}

static bool scan_number(struct json_scan *s)
{
	take(s, '-');
	if (!take(s, '0') && !scan_digits(s))
		return false;
	if (take(s, '.') && !scan_digits(s))
		return false;
	if (take(s, 'e') || take(s, 'E')) {
		if (!take(s, '+'))
			take(s, '-');
		if (!scan_digits(s))
			return false;
	}
	return true;
}

static bool is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string; its bytes are not checked for UTF-8 (crun does that). */
static bool scan_string(struct json_scan *s)
{
	if (!take(s, '"'))
		return false;
	while (s->pos < s->end) {
		uint8_t c = *s->pos++;

		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		if (s->pos == s->end)
			return false;
		c = *s->pos++;
		if (c == 'u') {
			if (s->end - s->pos < 4)
				return false;
			for (int i = 0; i < 4; i++)
				if (!is_hex(*s->pos++))
					return false;
		} else if (!strchr("\"\\/bfnrt", c) || !c) {
			return false;
		}
	}
	return false;
}

static bool scan_value(struct json_scan *s, int depth);

/* An object or array after its opening bracket, up to and with its closing one. */
static bool scan_members(struct json_scan *s, int depth, bool object)
{
	skip_space(s);
	if (take(s, object ? '}' : ']'))
		return true;
	for (;;) {
		if (object) {
			skip_space(s);
			if (!scan_string(s))
				return false;
			skip_space(s);
			if (!take(s, ':'))
				return false;
		}
		if (!scan_value(s, depth))
			return false;
		skip_space(s);
		if (take(s, object ? '}' : ']'))
			return true;
		if (!take(s, ','))
			return false;
	}
}

static bool scan_value(struct json_scan *s, int depth)
{
	skip_space(s);
	if (s->pos == s->end)
		return false;
	switch (*s->pos) {
	case '{':
	case '[':
		if (depth >= BUNDLE_JSON_DEPTH_MAX)
			return false;
		return scan_members(s, depth + 1, *s->pos++ == '{');
	case '"':
		return scan_string(s);
	case 't':
		return take_word(s, "true");
	case 'f':
		return take_word(s, "false");
	case 'n':
		return take_word(s, "null");
	default:
		return scan_number(s);
	}
}

bool bundle_json_is_object(const uint8_t *data, size_t len)
{
	struct json_scan s = { .pos = data, .end = data + len };

	skip_space(&s);
	if (s.pos == s.end || *s.pos != '{' || !scan_value(&s, 0))
		return false;
	skip_space(&s);
	return s.pos == s.end;
}

long bundle_parse_pids(const char *text, uint32_t *pids, size_t max)
{
	struct json_scan s = { .pos = (const uint8_t *)text, .end = (const uint8_t *)text + strlen(text) };
	long count = 0;

	skip_space(&s);
	if (!take(&s, '['))
		return -1;
	skip_space(&s);
	if (!take(&s, ']')) {
		for (;;) {
			uint64_t pid = 0;

			skip_space(&s);
			if (!is_digit(&s) || *s.pos == '0')
				return -1;
			while (is_digit(&s)) {
				pid = pid * 10 + (uint64_t)(*s.pos++ - '0');
				if (pid > 0x7fffffff)
					return -1;
			}
			if ((size_t)count < max)
				pids[count] = (uint32_t)pid;
			count++;
			skip_space(&s);
			if (take(&s, ']'))
				break;
			if (!take(&s, ','))
				return -1;
		}
	}
	skip_space(&s);
	return s.pos == s.end ? count : -1;
}
