#include "vmm/guest_control.h"

#include <string.h>

void guest_control_access(void *opaque, uint64_t offset, void *data,
			  uint32_t len, bool is_write)
{
	struct guest_control *gc = opaque;

	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (offset == GUEST_PORT_MARKER - GUEST_PORT_BASE && len == 1) {
		uint8_t marker = *(const uint8_t *)data;

		/* The first report of each marker counts. */
		if (marker >= 1 && marker <= GUEST_MARKER_MAX && !gc->marker_ns[marker])
			gc->marker_ns[marker] = gc->now_ns();
	} else if (offset == GUEST_PORT_STATUS - GUEST_PORT_BASE && len == 4) {
		uint32_t status;

		memcpy(&status, data, sizeof(status));
		if (status <= 255 && !gc->has_status) {
			gc->status = status;
			gc->has_status = true;
			gc->status_ns = gc->now_ns();
		}
	}
}
