/*
 * bundle.h - the checks and parsers of guest-init's Container service
 * (container.c) that need no system: what a client may name inside a
 * bundle, whether its bytes are a JSON object, and crun's pid lists.
 * Pure functions, unit-tested in tests/unit/test_bundle.c.
 */
#ifndef EROVM_GUEST_INIT_BUNDLE_H
#define EROVM_GUEST_INIT_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* guest-init's own files in a bundle (pid files, exec specs) live here. */
#define BUNDLE_PRIVATE_DIR ".erovm"
#define BUNDLE_CONFIG "config.json"
#define BUNDLE_PATH_MAX 1024
/* Deepest nesting of arrays and objects bundle_json_is_object() follows. */
#define BUNDLE_JSON_DEPTH_MAX 128

/*
 * NULL if @path may name a client's file in a bundle: relative, at most
 * BUNDLE_PATH_MAX bytes, no empty, "." or ".." component (so it cannot
 * leave the bundle), and not config.json or under BUNDLE_PRIVATE_DIR;
 * else what is wrong with it.
 */
const char *bundle_check_path(const char *path);

/*
 * True if @data (@len bytes, no terminating NUL needed) is exactly one
 * JSON object (RFC 8259), with white space around it allowed.
 */
bool bundle_json_is_object(const uint8_t *data, size_t len);

/*
 * Parses `crun ps --format json` output, a JSON array of pids (positive
 * integers that fit a pid_t). Returns the number of pids, storing up to
 * @max of them in @pids, or -1 if @text is not such an array.
 */
long bundle_parse_pids(const char *text, uint32_t *pids, size_t max);

#endif
