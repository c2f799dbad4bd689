#include "vmm/bus.h"

#include <errno.h>
#include <string.h>

#include "vmm/range.h"

int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 bus_handler handler, void *opaque, const char *name)
{
	uint64_t end;
	unsigned int pos = 0;

	if (len == 0 || !handler || !range_end(base, len, &end))
		return -EINVAL;
	for (unsigned int i = 0; i < bus->nr_ranges; i++) {
		const struct bus_range *r = &bus->ranges[i];

		if (ranges_overlap(r->base, r->len, base, len))
			return -EEXIST;
		if (r->base < base)
			pos = i + 1;
	}
	if (bus->nr_ranges == BUS_MAX_RANGES)
		return -ENOSPC;
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos],
		(bus->nr_ranges - pos) * sizeof(bus->ranges[0]));
	bus->ranges[pos] = (struct bus_range){
		.base = base, .len = len, .handler = handler,
		.opaque = opaque, .name = name,
	};
	bus->nr_ranges++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr,
				 uint32_t len)
{
	unsigned int lo = 0, hi = bus->nr_ranges;

	/* The last range whose base is <= addr is the only candidate. */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (bus->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct bus_range *r = &bus->ranges[lo - 1];

	return range_within(r->base, r->len, addr, len) ? r : NULL;
}

bool bus_access(const struct bus *bus, uint64_t addr, void *data,
		uint32_t len, bool is_write)
{
	const struct bus_range *r = bus_find(bus, addr, len);

	if (!r) {
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	r->handler(r->opaque, addr - r->base, data, len, is_write);
	return true;
}
