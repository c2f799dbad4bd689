/* Unit tests for vm_handle_exit(): fabricated exits, no KVM needed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/vm.h"

#define RUN_SIZE 4096

struct port_log {
	uint8_t bytes[16];
	unsigned int n;
	uint64_t last_offset;
};

static void log_port(void *opaque, uint64_t offset, void *data, uint32_t len,
		     bool is_write)
{
	struct port_log *log = opaque;

	log->last_offset = offset;
	if (is_write && len == 1 && log->n < sizeof(log->bytes))
		log->bytes[log->n++] = *(uint8_t *)data;
	else if (!is_write)
		memset(data, 0x42, len);
}

struct fixture {
	struct vm vm;
	struct kvm_run *run;
	struct port_log log;
	char err[256];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->run = calloc(1, RUN_SIZE);
	if (!f->run)
		return -1;
	f->vm.run_size = RUN_SIZE;
	if (bus_register(&f->vm.pio, 0x3f8, 8, log_port, &f->log, "uart") ||
	    bus_register(&f->vm.mmio, 0xd0000000, 0x200, log_port, &f->log, "virtio"))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	free(f->run);
	free(f);
	return 0;
}

static void test_string_port_write_dispatches_every_item(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = (uint8_t *)f->run + 1024;

	f->run->exit_reason = KVM_EXIT_IO;
	f->run->io.direction = KVM_EXIT_IO_OUT;
	f->run->io.size = 1;
	f->run->io.port = 0x3f8;
	f->run->io.count = 3;
	f->run->io.data_offset = 1024;
	memcpy(data, "abc", 3);
	assert_int_equal(vm_handle_exit(&f->vm, f->run, f->err, sizeof(f->err)), VM_RUNNING);
	assert_int_equal(f->log.n, 3);
	assert_memory_equal(f->log.bytes, "abc", 3);
	assert_int_equal(f->vm.exits[KVM_EXIT_IO], 1);
}

static void test_port_data_outside_run_is_an_error(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_IO;
	f->run->io.direction = KVM_EXIT_IO_OUT;
	f->run->io.size = 4;
	f->run->io.port = 0x3f8;
	f->run->io.count = 2;
	f->run->io.data_offset = RUN_SIZE - 4;
	assert_int_equal(vm_handle_exit(&f->vm, f->run, f->err, sizeof(f->err)), VM_STOP_ERROR);
	assert_int_equal(f->log.n, 0);
	assert_non_null(strstr(f->err, "outside kvm_run"));
}

static void test_mmio_read_goes_to_the_bus_with_offset(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_MMIO;
	f->run->mmio.phys_addr = 0xd0000070;
	f->run->mmio.len = 4;
	f->run->mmio.is_write = 0;
	assert_int_equal(vm_handle_exit(&f->vm, f->run, f->err, sizeof(f->err)), VM_RUNNING);
	assert_int_equal(f->log.last_offset, 0x70);
	assert_memory_equal(f->run->mmio.data, "\x42\x42\x42\x42", 4);
}

static void test_unclaimed_mmio_read_returns_ones(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_MMIO;
	f->run->mmio.phys_addr = 0xfee00000;
	f->run->mmio.len = 2;
	assert_int_equal(vm_handle_exit(&f->vm, f->run, f->err, sizeof(f->err)), VM_RUNNING);
	assert_memory_equal(f->run->mmio.data, "\xff\xff", 2);
}

static void test_stop_reasons(void **state)
{
	struct fixture *f = *state;

	f->run->exit_reason = KVM_EXIT_SHUTDOWN;
	assert_int_equal(vm_handle_exit(&f->vm, f->run, f->err, sizeof(f->err)), VM_STOP_TRIPLE_FAULT);
	f->run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
	f->run->system_event.type = KVM_SYSTEM_EVENT_SHUTDOWN;
	assert_int_equal(vm_handle_exit(&f->vm, f->run, f->err, sizeof(f->err)), VM_STOP_SHUTDOWN);
	f->run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	f->run->internal.suberror = 1;
	assert_int_equal(vm_handle_exit(&f->vm, f->run, f->err, sizeof(f->err)), VM_STOP_ERROR);
	assert_non_null(strstr(f->err, "internal error"));
	f->run->exit_reason = 1000;
	assert_int_equal(vm_handle_exit(&f->vm, f->run, f->err, sizeof(f->err)), VM_STOP_ERROR);
	assert_non_null(strstr(f->err, "unhandled exit 1000"));
	assert_int_equal(f->vm.exits[VM_EXIT_COUNTERS - 1], 1);
}

static void test_device_stop_request_ends_the_loop(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = (uint8_t *)f->run + 1024;

	f->vm.stop = VM_STOP_RESET;
	f->run->exit_reason = KVM_EXIT_IO;
	f->run->io.direction = KVM_EXIT_IO_OUT;
	f->run->io.size = 1;
	f->run->io.port = 0x3f8;
	f->run->io.count = 1;
	f->run->io.data_offset = 1024;
	*data = 'x';
	assert_int_equal(vm_handle_exit(&f->vm, f->run, f->err, sizeof(f->err)), VM_STOP_RESET);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_string_port_write_dispatches_every_item, setup, teardown),
		cmocka_unit_test_setup_teardown(test_port_data_outside_run_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmio_read_goes_to_the_bus_with_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclaimed_mmio_read_returns_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_reasons, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_stop_request_ends_the_loop, setup, teardown),
	};

	return cmocka_run_group_tests_name("vm_exit", tests, NULL, NULL);
}
