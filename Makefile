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
PROTOBUF_LIBS = $(shell pkg-config --libs libprotobuf-c)
SHIM_CFLAGS = $(shell pkg-config --cflags json-c)
SHIM_LIBS = $(shell pkg-config --libs json-c)

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Monitor and device code, shared by the vmm-run binary and the unit tests
# (every unit test links all of it; the linker keeps what it uses).
VMM_SRCS := $(filter-out vmm/main.c,$(wildcard vmm/*.c devices/*.c))

# Protocol buffers: each proto/DIR/NAME.proto (imports relative to proto/)
# becomes $(BUILD)/proto/DIR/NAME.pb-c.{c,h} through protoc-c, included as
# "DIR/NAME.pb-c.h", and its objects $(BUILD)/{obj,san}/proto/DIR/NAME.pb-c.o.
PROTO_SRCS := $(shell find proto -name '*.proto' 2>/dev/null)
PROTO_HEADERS := $(PROTO_SRCS:%.proto=$(BUILD)/%.pb-c.h)
STD_CFLAGS += -I$(BUILD)/proto
# ttrpc and its messages: shared by guest-init, erovm-ctl, the shim and tests.
RPC_OBJS := $(patsubst %.c,%.o,$(wildcard ttrpc/*.c)) proto/ttrpc.pb-c.o proto/erovm_control.pb-c.o

# The containerd shim: its modules are tested by tests/unit/test_shim_*.c
# (all but main.c); the binary finds vmm-run, rootfs.erofs and the guest
# kernel (the vmlinuz link) next to itself.
SHIM_SRCS := $(filter-out shim/main.c,$(wildcard shim/*.c))
SHIM := $(BUILD)/containerd-shim-erovm-v1
SHIM_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,shim/main.c $(SHIM_SRCS) ctl/hybrid_vsock.c vmm/mount_plan.c) \
	$(PROTO_SRCS:%.proto=$(BUILD)/obj/%.pb-c.o) $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard ttrpc/*.c))
SHIM_TEST_SRCS := $(wildcard tests/unit/test_shim_*.c)

UNIT_TEST_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_TESTS := $(UNIT_TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
KVM_SMOKE := $(BUILD)/tests/kvm-smoke
VMM_RUN := $(BUILD)/vmm-run

# guest-init: PID 1 of the guest. Static: the root image has no libraries.
GUEST_INIT := $(BUILD)/guest-init
GUEST_INIT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard guest-init/*.c) vmm/guest_args.c vmm/mount_plan.c) \
	$(RPC_OBJS:%=$(BUILD)/obj/%)
ROOTFS := $(BUILD)/rootfs.erofs

# Test fixtures: EROFS layers, a multi-blob flat image, an ext4 upper.
EROFS_FLATTEN := $(BUILD)/tests/fixtures/erofs-flatten
FIXTURES := $(BUILD)/fixtures

# The containerd tests' image (tests/containerd/mkimage).
CONTAINERD_IMAGE := $(BUILD)/containerd/busybox.oci.tar

# Both ends of the vsock e2e test; static, for the guest's test disk.
VSOCK_TOOL := $(BUILD)/tests/vsock-tool

# erovm-ctl: the host's client of the guest control service.
EROVM_CTL := $(BUILD)/erovm-ctl
EROVM_CTL_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard ctl/*.c)) $(RPC_OBJS:%=$(BUILD)/obj/%)

# Host tests of the control service: guest-init's loop on Unix sockets
# (sanitized, like the unit tests) and a stand-in for the hybrid vsock.
HOST_TESTS := $(BUILD)/tests/host
CONTROL_HOST := $(HOST_TESTS)/control-host
HYBRID_BRIDGE := $(HOST_TESTS)/hybrid-bridge
CONTROL_CALL := $(HOST_TESTS)/control-call
# Plays containerd towards a shim binary (tests/e2e/containerd.test).
SHIM_CLIENT := $(HOST_TESTS)/shim-client
CONTROL_HOST_OBJS := $(patsubst %.c,$(BUILD)/san/%.o,tests/host/control-host.c vmm/mount_plan.c \
	$(filter-out guest-init/init.c,$(wildcard guest-init/*.c))) $(RPC_OBJS:%=$(BUILD)/san/%)

PROGRAMS := $(VMM_RUN) $(GUEST_INIT) $(UNIT_TESTS) $(KVM_SMOKE) $(EROFS_FLATTEN) \
	$(VSOCK_TOOL) $(EROVM_CTL) $(CONTROL_HOST) $(HYBRID_BRIDGE) $(CONTROL_CALL) $(SHIM) \
	$(SHIM_CLIENT)

# Keep intermediate objects so rebuilds are incremental.
.SECONDARY:

.PHONY: all programs kernels guest-kernel testhost rootfs fixtures deps check demo paths clean install \
	bench bench-tools containerd-image
.DEFAULT_GOAL := all

all: programs kernels rootfs fixtures containerd-image

programs: $(PROGRAMS)

# Unit tests and the code they test are built with ASan and UBSan.
$(BUILD)/san/%.o: %.c | $(PROTO_HEADERS)
	@mkdir -p $(@D)
	@echo "  CC [san] $<"
	$(Q)$(CC) $(STD_CFLAGS) $(CFLAGS) $(SAN_FLAGS) $(CMOCKA_CFLAGS) $(LIB_CFLAGS) $(SHIM_FLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: $(BUILD)/san/tests/unit/%.o $(VMM_SRCS:%.c=$(BUILD)/san/%.o) $(RPC_OBJS:%=$(BUILD)/san/%)
	@mkdir -p $(@D)
	@echo "  LD [san] $@"
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LIB_LIBS) $(PROTOBUF_LIBS)

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/proto
	@echo "  PROTOC-C $<"
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILD)/proto $<

$(BUILD)/san/proto/%.o: $(BUILD)/proto/%.c | $(PROTO_HEADERS)
	@mkdir -p $(@D)
	@echo "  CC [san] $<"
	$(Q)$(CC) $(STD_CFLAGS) $(CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(BUILD)/obj/proto/%.o: $(BUILD)/proto/%.c | $(PROTO_HEADERS)
	@mkdir -p $(@D)
	@echo "  CC $<"
	$(Q)$(CC) $(STD_CFLAGS) $(CFLAGS) -c -o $@ $<

# Shim code and its tests use json-c.
$(SHIM_SRCS:%.c=$(BUILD)/san/%.o) $(SHIM_TEST_SRCS:%.c=$(BUILD)/san/%.o) \
	$(SHIM_OBJS): SHIM_FLAGS = $(SHIM_CFLAGS)

# A static pattern rule: it must win over the generic unit-test rule.
$(SHIM_TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%): $(BUILD)/tests/unit/%: \
		$(BUILD)/san/tests/unit/%.o $(SHIM_SRCS:%.c=$(BUILD)/san/%.o) \
		$(PROTO_SRCS:%.proto=$(BUILD)/san/%.pb-c.o) $(VMM_SRCS:%.c=$(BUILD)/san/%.o) \
		$(patsubst %.c,$(BUILD)/san/%.o,$(wildcard ttrpc/*.c) ctl/hybrid_vsock.c)
	@mkdir -p $(@D)
	@echo "  LD [san] $@"
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(CMOCKA_LIBS) $(SHIM_LIBS) $(PROTOBUF_LIBS) $(LIB_LIBS)

# guest-init's pure parts, tested on their own.
$(BUILD)/tests/unit/test_bundle: $(BUILD)/san/guest-init/bundle.o

$(BUILD)/obj/%.o: %.c | $(PROTO_HEADERS)
	@mkdir -p $(@D)
	@echo "  CC $<"
	$(Q)$(CC) $(STD_CFLAGS) $(CFLAGS) $(LIB_CFLAGS) $(SHIM_FLAGS) -c -o $@ $<

$(VMM_RUN): $(BUILD)/obj/vmm/main.o $(VMM_SRCS:%.c=$(BUILD)/obj/%.o)
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^ $(LIB_LIBS)

$(GUEST_INIT): $(GUEST_INIT_OBJS)
	@mkdir -p $(@D)
	@echo "  LD [static] $@"
	$(Q)$(CC) -static -o $@ $^ $(PROTOBUF_LIBS)

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

# Always run: mkimage caches by its inputs (itself, busybox).
containerd-image:
	$(Q)mkdir -p $(dir $(CONTAINERD_IMAGE))
	$(Q)tests/containerd/mkimage $(CONTAINERD_IMAGE)

$(VSOCK_TOOL): $(BUILD)/obj/tests/guest/vsock-tool.o
	@mkdir -p $(@D)
	@echo "  LD [static] $@"
	$(Q)$(CC) -static -o $@ $^

$(EROVM_CTL): $(EROVM_CTL_OBJS)
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^ $(PROTOBUF_LIBS)

$(CONTROL_HOST): $(CONTROL_HOST_OBJS)
	@mkdir -p $(@D)
	@echo "  LD [san] $@"
	$(Q)$(CC) $(SAN_FLAGS) -o $@ $^ $(PROTOBUF_LIBS)

$(HYBRID_BRIDGE): $(BUILD)/obj/tests/host/hybrid-bridge.o
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^

$(CONTROL_CALL): $(BUILD)/obj/tests/host/control-call.o $(BUILD)/obj/ctl/hybrid_vsock.o \
		$(RPC_OBJS:%=$(BUILD)/obj/%)
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^ $(PROTOBUF_LIBS)

$(SHIM): $(SHIM_OBJS)
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^ $(SHIM_LIBS) $(PROTOBUF_LIBS) -lpthread

$(SHIM_CLIENT): $(BUILD)/obj/tests/host/shim-client.o \
		$(sort $(RPC_OBJS:%=$(BUILD)/obj/%) $(PROTO_SRCS:%.proto=$(BUILD)/obj/%.pb-c.o))
	@mkdir -p $(@D)
	@echo "  LD $@"
	$(Q)$(CC) -o $@ $^ $(PROTOBUF_LIBS)

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

# The shim boots the guest kernel it finds next to itself: $(BUILD)/vmlinuz.
guest-kernel:
	$(Q)kernel-config/build
	@mkdir -p $(BUILD)
	$(Q)ln -sfn "$$(kernel-config/build --print-paths | sed -n 's/^guest_kernel=//p')" $(BUILD)/vmlinuz

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
	$(Q)$(MAKE) --no-print-directory $(VMM_RUN) kernels rootfs bench-tools $(VSOCK_TOOL)
	$(Q)BUILD=$(BUILD) bench/run $(if $(QUICK),--quick)

# Installs the shim and what it runs where it looks for them (shim/main.c):
# the shim and erovm-ctl in /usr/local/bin, vmm-run, the guest root image
# and kernel in /usr/local/lib/erovm. DESTDIR stages it elsewhere.
install: all
	install -D -m 0755 $(SHIM) $(DESTDIR)/usr/local/bin/containerd-shim-erovm-v1
	install -D -m 0755 $(EROVM_CTL) $(DESTDIR)/usr/local/bin/erovm-ctl
	install -D -m 0755 $(VMM_RUN) $(DESTDIR)/usr/local/lib/erovm/vmm-run
	install -D -m 0644 $(ROOTFS) $(DESTDIR)/usr/local/lib/erovm/rootfs.erofs
	install -D -m 0644 $(BUILD)/vmlinuz $(DESTDIR)/usr/local/lib/erovm/vmlinuz

paths:
	$(Q)kernel-config/build --print-paths
	$(Q)tests/testhost/prepare --print-paths
	@echo "vmm_run=$(abspath $(VMM_RUN))"
	@echo "guest_init=$(abspath $(GUEST_INIT))"
	@echo "erovm_ctl=$(abspath $(EROVM_CTL))"
	@echo "rootfs=$(abspath $(ROOTFS))"
	@echo "kvm_smoke=$(abspath $(KVM_SMOKE))"
	@echo "vsock_tool=$(abspath $(VSOCK_TOOL))"
	@echo "erofs_flatten=$(abspath $(EROFS_FLATTEN))"
	@echo "fixtures=$(abspath $(FIXTURES))"
	@echo "containerd_image=$(abspath $(CONTAINERD_IMAGE))"
	@echo "containerd_shim=$(abspath $(SHIM))"
	@echo "unit_tests=$(abspath $(BUILD)/tests/unit)"
	@echo "host_tests=$(abspath $(HOST_TESTS))"
	@echo "bench_tools=$(abspath $(BUILD)/bench)"

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
