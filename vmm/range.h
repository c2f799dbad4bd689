/*
 * range.h - overflow-checked arithmetic on address ranges.
 *
 * A range is (start, len) over u64 addresses, covering [start, start + len).
 * Guest-supplied starts and lengths can be anything, so no function here
 * computes start + len without first proving it cannot wrap. A range
 * ending at exactly 2^64 counts as wrapping: no guest-physical address
 * (52 bits at most on x86) comes near it.
 */
#ifndef EROVM_RANGE_H
#define EROVM_RANGE_H

#include <stdbool.h>
#include <stdint.h>

/* Stores start + len in *end and returns true, or returns false if it wraps. */
static inline bool range_end(uint64_t start, uint64_t len, uint64_t *end)
{
	return !__builtin_add_overflow(start, len, end);
}

/*
 * True if [start, start + len) lies entirely inside
 * [outer_start, outer_start + outer_len). Empty ranges are never inside:
 * callers that meet a zero length decide for themselves what it means.
 */
static inline bool range_within(uint64_t outer_start, uint64_t outer_len,
				uint64_t start, uint64_t len)
{
	uint64_t end, outer_end;

	if (len == 0 || !range_end(start, len, &end) ||
	    !range_end(outer_start, outer_len, &outer_end))
		return false;
	return start >= outer_start && end <= outer_end;
}

/* True if two non-empty, non-wrapping ranges share at least one address. */
static inline bool ranges_overlap(uint64_t a_start, uint64_t a_len,
				  uint64_t b_start, uint64_t b_len)
{
	uint64_t a_end, b_end;

	if (a_len == 0 || b_len == 0 || !range_end(a_start, a_len, &a_end) ||
	    !range_end(b_start, b_len, &b_end))
		return false;
	return a_start < b_end && b_start < a_end;
}

#endif
