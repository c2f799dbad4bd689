/*
 * guest_control.h - the monitor's side of vmm/guest_abi.h: the port block
 * through which guest-init reports boot markers and the command's status.
 *
 * Markers are timestamped with the clock the monitor passes in (so tests
 * can use a fake one); the status is kept until the VM ends. Accesses of
 * the wrong size or offset, and reads, are ignored (reads return 0): a
 * confused guest cannot make the monitor misreport.
 */
#ifndef EROVM_GUEST_CONTROL_H
#define EROVM_GUEST_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/guest_abi.h"

#define GUEST_MARKER_MAX GUEST_MARKER_COMMAND_FINISHED

struct guest_control {
	uint64_t (*now_ns)(void);
	uint64_t marker_ns[GUEST_MARKER_MAX + 1];   /* 0: not seen */
	bool has_status;
	uint8_t status;
	uint64_t status_ns;
};

/* Bus handler for [GUEST_PORT_BASE, GUEST_PORT_BASE + GUEST_PORT_LEN). */
void guest_control_access(void *opaque, uint64_t offset, void *data,
			  uint32_t len, bool is_write);

#endif
