/*
 * guest_args.h - the command to run in the guest, on its kernel command
 * line. vmm-run encodes it, guest-init decodes it; the encoding is
 * described in vmm/guest_abi.h.
 */
#ifndef EROVM_GUEST_ARGS_H
#define EROVM_GUEST_ARGS_H

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

#endif
