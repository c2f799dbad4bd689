/*
 * guest_args.h - the command to run in the guest, on its kernel command
 * line. vmm-run encodes it, guest-init decodes it; the encoding is
 * described in vmm/guest_abi.h.
 */
#ifndef EROVM_GUEST_ARGS_H
#define EROVM_GUEST_ARGS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Appends " -- " and one encoded word per argument of @argv (@argc of
 * them, the command first) to the NUL-terminated kernel command line in
 * @buf, a buffer of @size bytes. Returns the new length of the line, or
 * -EINVAL if @argc < 1, an argument is NULL, @buf holds no NUL within
 * @size or @size exceeds INT_MAX; -E2BIG if @argc > GUEST_ARGS_MAX; or
 * -ENOSPC if the result and its NUL do not fit in @size. On error @buf
 * holds its original line.
 */
int guest_args_encode(char *buf, size_t size, char *const argv[], int argc);

/*
 * Decodes, in place, one word written by guest_args_encode(). Returns 0,
 * or -EINVAL, leaving @word unchanged, if @word is not a valid encoding
 * (see vmm/guest_abi.h).
 */
int guest_args_decode(char *word);

/*
 * Appends " @flag" (no space on an empty line) to the NUL-terminated
 * kernel command line in @buf (@size bytes). Returns the new length, or -ENOSPC (line unchanged) if it does
 * not fit, -EINVAL if @buf holds no NUL within @size.
 */
int guest_args_add_flag(char *buf, size_t size, const char *flag);

/*
 * True if kernel command line @cmdline holds @flag as a word of its own
 * (double quotes stripped, as the kernel does) before a bare "--".
 */
bool guest_args_has_flag(const char *cmdline, const char *flag);

#endif
