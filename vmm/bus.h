/*
 * bus.h - a table of address ranges claimed by devices, one per address
 * space (I/O ports, MMIO).
 *
 * The vCPU loop hands every port and MMIO exit to bus_access(); the range
 * that covers the whole access gets it, with the offset from its base.
 * Ranges are kept sorted and may not be empty, wrap or overlap, so lookup
 * is a binary search and no two devices can both claim an address.
 */
#ifndef EROVM_BUS_H
#define EROVM_BUS_H

#include <stdbool.h>
#include <stdint.h>

#define BUS_MAX_RANGES 128 /* all VIRTIO_MMIO_MAX_DEVICES windows fit */

/*
 * A device's handler: read or write @len bytes (1, 2, 4 or 8) at @offset
 * from its base. For reads it fills @data; unhandled bytes should read as
 * zero. Runs on a vCPU thread, under vm_run()'s VM lock: never
 * concurrently with another handler (vmm/vm.h).
 */
typedef void (*bus_handler)(void *opaque, uint64_t offset, void *data,
			    uint32_t len, bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_handler handler;
	void *opaque;
	const char *name;
};

struct bus {
	struct bus_range ranges[BUS_MAX_RANGES];
	unsigned int nr_ranges;
};

/*
 * Claims [base, base + len) for a device. Returns 0, -EINVAL for an empty
 * or wrapping range or a NULL handler, -EEXIST if it overlaps a claimed
 * range, -ENOSPC if the table is full.
 */
int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 bus_handler handler, void *opaque, const char *name);

/* The range containing all of [addr, addr + len), or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr,
				 uint32_t len);

/*
 * Dispatches an access. Returns false when no single range covers it; a
 * read is then filled with 0xff bytes (what an empty ISA bus returns) and
 * the caller decides whether to log it.
 */
bool bus_access(const struct bus *bus, uint64_t addr, void *data,
		uint32_t len, bool is_write);

#endif
