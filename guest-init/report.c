#include "guest-init/guest_init.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <termios.h>
#include <unistd.h>

static void vreport(const char *fmt, va_list ap)
{
	char message[512];

	vsnprintf(message, sizeof(message), fmt, ap);
	dprintf(STDERR_FILENO, "guest-init: %s\n", message);
}

void report(const char *fmt, ...)
{
	int saved_errno = errno;
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	errno = saved_errno;
}

void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	report("cannot run the command; stopping the VM without a status");
	end_vm();
}

void end_vm(void)
{
	/* The reset would cut off console output still in the UART's queue. */
	tcdrain(STDERR_FILENO);
	sync();
	/* The kernel runs with reboot=k: an i8042 reset, which ends the VM. */
	reboot(RB_AUTOBOOT);
	report("reboot: %s", strerror(errno));
	/* PID 1 must never exit: the kernel would panic. */
	for (;;)
		pause();
}
