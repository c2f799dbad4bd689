/*
 * guest_mem.h - the one way erovm touches guest RAM.
 *
 * Guest RAM is a few host mappings, each backing one guest-physical range
 * (a region). Every guest-supplied address goes through guest_mem_ptr() or
 * the copy helpers built on it; they succeed only when the whole range
 * [gpa, gpa + len) lies inside a single region, with no arithmetic that can
 * wrap. A range that straddles two regions is refused even if they are
 * adjacent: their host mappings need not be.
 */
#ifndef EROVM_GUEST_MEM_H
#define EROVM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 4

struct guest_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	struct guest_region regions[GUEST_MEM_MAX_REGIONS];
	unsigned int nr_regions;
};

/*
 * Adds a region backing [gpa, gpa + size) with host memory at @host.
 * Returns 0, -EINVAL for an empty, wrapping or NULL-backed region, -EEXIST
 * if it overlaps an existing region, or -ENOSPC when the table is full.
 */
int guest_mem_add_region(struct guest_mem *mem, uint64_t gpa, uint64_t size,
			 void *host);

/*
 * Returns the host address of guest range [gpa, gpa + len), or NULL unless
 * it is non-empty and lies entirely inside one region.
 */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/*
 * Copy between guest RAM and a host buffer. Return 0, or -EFAULT (copying
 * nothing) unless the whole guest range is valid for guest_mem_ptr().
 * A zero length copies nothing and succeeds.
 */
int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *buf,
		   size_t len);
int guest_mem_write(const struct guest_mem *mem, uint64_t gpa, const void *buf,
		    size_t len);

#endif
