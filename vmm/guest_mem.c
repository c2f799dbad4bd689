#include "vmm/guest_mem.h"

#include <errno.h>
#include <string.h>

#include "vmm/range.h"

int guest_mem_add_region(struct guest_mem *mem, uint64_t gpa, uint64_t size,
			 void *host)
{
	uint64_t end;

	if (size == 0 || !host || !range_end(gpa, size, &end))
		return -EINVAL;
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		if (ranges_overlap(r->gpa, r->size, gpa, size))
			return -EEXIST;
	}
	if (mem->nr_regions == GUEST_MEM_MAX_REGIONS)
		return -ENOSPC;
	mem->regions[mem->nr_regions++] = (struct guest_region){
		.gpa = gpa, .size = size, .host = host,
	};
	return 0;
}

void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < mem->nr_regions; i++) {
		const struct guest_region *r = &mem->regions[i];

		if (range_within(r->gpa, r->size, gpa, len))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *buf,
		   size_t len)
{
	const void *src;

	if (len == 0)
		return 0;
	src = guest_mem_ptr(mem, gpa, len);
	if (!src)
		return -EFAULT;
	memcpy(buf, src, len);
	return 0;
}

int guest_mem_write(const struct guest_mem *mem, uint64_t gpa, const void *buf,
		    size_t len)
{
	void *dst;

	if (len == 0)
		return 0;
	dst = guest_mem_ptr(mem, gpa, len);
	if (!dst)
		return -EFAULT;
	memcpy(dst, buf, len);
	return 0;
}
