# erovm: top-level build. `make` builds everything, `make check` runs every
# test, `make demo` runs the main job, `make paths` names what was built.
# See README.md.

BUILD := build
CC ?= cc
CFLAGS ?= -O2 -g
STD_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. -MMD -MP
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

# Evaluated when used, so `make check` can install the libraries first.
CMOCKA_CFLAGS = $(shell pkg-config --cflags cmocka)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)
LIB_CFLAGS = $(shell pkg-config --cflags liburing)
LIB_LIBS = $(shell pkg-config --libs liburing) -lpthread

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Monitor and device code, shared by the vmm-run binary and the unit tests
# (every unit test links all of it; the linker keeps what it uses).
VMM_SRCS := $(filter-out vmm/main.c,$(wildcard vmm/*.c devices/*.c))

UNIT_TEST_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TESTS := $(UNIT_TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
KVM_SMOKE := $(BUILD)/tests/kvm-smoke
VMM_RUN := $(BUILD)/vmm-run

# guest-init: PID 1 of the guest. Static: the root image has no libraries.
GUEST_INIT := $(BUILD)/guest-init
GUEST_INIT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard guest-init/*.c) vmm/guest_args.c vmm/mount_plan.c)
ROOTFS := $(BUILD)/rootfs.erofs

# Test fixtures: EROFS layers, a multi-blob flat image, an ext4 upper.
EROFS_FLATTEN := $(BUILD)/tests/fixtures/erofs-flatten
FIXTURES := $(BUILD)/fixtures

PROGRAMS := $(VMM_RUN) $(GUEST_INIT) $(UNIT_TESTS) $(KVM_SMOKE) $(EROFS_FLATTEN)

# Keep intermediate objects so rebuilds are incremental.
.SECONDARY:

.PHONY: all programs kernels guest-kernel testhost rootfs fixtures deps check demo paths clean \
	bench bench-tools
.DEFAULT_GOAL := all

all: programs kernels rootfs fixtures

programs: $(PROGRAMS)

# Unit tests and the code they test are built with ASan and UBSan.
$(BUILD)/san/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC [san] $<"
	$(Q)$(CC) $(STD_CFLAGS) $(CFLAGS) $(SAN_FLAGS) $(CMOCKA_CFLAGS) $(LIB_CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: $(BUILD)/san/tests/unit/%.o $(VMM_SRCS:%.c=$(BUILD)/san/%.o)
	@mkdir -p $(@D)
	@echo "  LD [san] $@"
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LIB_LIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC $<"
	$(Q)$(CC) $(STD_CFLAGS) $(CFLAGS) $(LIB_CFLAGS) -c -o $@ $<

$(VMM_RUN): $(BUILD)/obj/vmm/main.o $(VMM_SRCS:%.c=$(BUILD)/obj/%.o)
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^ $(LIB_LIBS)

$(GUEST_INIT): $(GUEST_INIT_OBJS)
	@mkdir -p $(@D)
	@echo "  LD [static] $@"
	$(Q)$(CC) -static -o $@ $^

# Always run: mkrootfs caches by content and does nothing when the image
# already matches guest-init, busybox, mkfs.erofs and itself.
rootfs: $(GUEST_INIT)
	$(Q)guest-init/mkrootfs $(ROOTFS) $(GUEST_INIT)

$(EROFS_FLATTEN): $(BUILD)/obj/tests/fixtures/erofs-flatten.o
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^

# Always run: tests/fixtures/build caches by content and does nothing when
# its output already matches its inputs. Needs root (mknod, xattrs, loop).
fixtures: $(EROFS_FLATTEN)
	$(Q)tests/fixtures/build $(abspath $(FIXTURES)) $(abspath $(EROFS_FLATTEN))

$(KVM_SMOKE): $(BUILD)/obj/tests/kvm/smoke.o
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^

# Benchmarks (bench/run): a stopwatch for monitors' start-up and a tiny
# guest (a PVH "kernel" of a few instructions) that any /dev/kvm runs.
BENCH_TOOLS := $(BUILD)/bench/kvm-stopwatch $(BUILD)/bench/tiny-guest

bench-tools: $(BENCH_TOOLS)

$(BUILD)/bench/kvm-stopwatch: $(BUILD)/obj/bench/kvm-stopwatch.o
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^

$(BUILD)/bench/tiny-guest: bench/tiny-guest.S
	@mkdir -p $(@D)
	@echo "  AS $<"
	$(Q)$(CC) -nostdlib -static -no-pie -Wl,-N,--no-warn-rwx-segments,--build-id=none \
		-Wl,-Ttext=0x100000,-e,pvh_entry -o $@ $<

# The kernels are cached outside the repository; their scripts do nothing
# when the cache already holds a matching build.
kernels: guest-kernel testhost

guest-kernel:
	$(Q)kernel-config/build

testhost:
	$(Q)tests/testhost/prepare >/dev/null

deps:
	$(Q)scripts/deps.sh

# Dependencies first, then a fresh make so pkg-config sees them.
check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/check

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo

# QUICK=1: bench/run --quick, a smoke check of every suite.
bench: deps
	$(Q)$(MAKE) --no-print-directory $(VMM_RUN) kernels rootfs bench-tools
	$(Q)BUILD=$(BUILD) bench/run $(if $(QUICK),--quick)

paths:
	$(Q)kernel-config/build --print-paths
	$(Q)tests/testhost/prepare --print-paths
	@echo "vmm_run=$(abspath $(VMM_RUN))"
	@echo "guest_init=$(abspath $(GUEST_INIT))"
	@echo "rootfs=$(abspath $(ROOTFS))"
	@echo "kvm_smoke=$(abspath $(KVM_SMOKE))"
	@echo "erofs_flatten=$(abspath $(EROFS_FLATTEN))"
	@echo "fixtures=$(abspath $(FIXTURES))"
	@echo "unit_tests=$(abspath $(BUILD)/tests/unit)"
	@echo "bench_tools=$(abspath $(BUILD)/bench)"

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
