# qemu-upgrade: `make` builds the library and the CLI, `make check` runs the whole TAP suite.
# `make ASAN=1 check-unit` runs the unit tests under AddressSanitizer and UBSan.
PREFIX  ?= /usr/local
DESTDIR ?=
SYSCONFDIR ?= /etc
CC      ?= cc

ifeq ($(ASAN),1)
BUILD   ?= build/asan
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD   ?= build
SANITIZE =
endif

PKGS     = json-c zlib libcap libcrypto libseccomp
WARN     = -Wall -Wextra -Werror -Wvla -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wframe-larger-than=16384 -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) $(SANITIZE) -D_GNU_SOURCE -Iinclude -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(SANITIZE) $(shell pkg-config --libs $(PKGS))

LIB_SRC  = $(wildcard upgrade/*.c upgrade/fdpass/*.c upgrade/pageflip/*.c qemu-integration/*.c remote/*.c remote/*/*.c)
LIB_SRC := $(filter-out upgrade/main.c,$(LIB_SRC))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(wildcard tests/unit/test-*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.t)
E2E      = $(wildcard tests/e2e/*.t)
STATIC   = $(wildcard tests/static/*.t)

all: $(BUILD)/qemu-upgrade $(BUILD)/libqemu-upgrade.a $(BUILD)/examples/upgrade-one

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libqemu-upgrade.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/qemu-upgrade: $(BUILD)/upgrade/main.o $(BUILD)/libqemu-upgrade.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/examples/upgrade-one: $(BUILD)/examples/upgrade-one.o $(BUILD)/libqemu-upgrade.a
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit/%.t: $(BUILD)/tests/unit/%.o $(BUILD)/upgrade/testhooks-on.o $(BUILD)/libqemu-upgrade.a
	$(CC) -o $@ $^ $(LDLIBS) -lcmocka

# The build for tests: the same tool, plus the test hooks (upgrade/testhooks.h), which the
# installed qemu-upgrade never honours. Linked ahead of the library, testhooks-on.o takes the
# place of the library's testhooks.o.
$(BUILD)/upgrade/testhooks-on.o: upgrade/testhooks.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DQU_TEST_HOOKS -MMD -MP -c -o $@ $<

$(BUILD)/qemu-upgrade-test: $(BUILD)/upgrade/main.o $(BUILD)/upgrade/testhooks-on.o $(BUILD)/libqemu-upgrade.a
	$(CC) -o $@ $^ $(LDLIBS)

HELPERS  = $(BUILD)/tests/helpers/tapopen $(BUILD)/tests/helpers/evilpreload.so $(BUILD)/tests/helpers/seccompwrap

$(BUILD)/tests/helpers/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/tests/helpers/%.so: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(SANITIZE),$(CFLAGS)) -fPIC -shared -o $@ $< -ldl

units: $(UNIT_BIN) $(HELPERS) $(BUILD)/qemu-upgrade-test

# Unit tests: fast, no VM. Safe under ASan.
check-unit: all units
	prove --exec '' $(UNIT_BIN) $(STATIC)

# The whole suite: unit tests plus end-to-end tests against real QEMU, two at a time.
check: all units
	QU_BIN=$(abspath $(BUILD)/qemu-upgrade-test) prove -j2 --exec '' $(UNIT_BIN) $(STATIC) $(E2E)

# The fault and interrupt tests with two CPUs kept busy, each new-QEMU kill repeated: they
# must pass on a loaded machine as on an idle one (CI runs this too).
LOAD_E2E = tests/e2e/faults-error.t tests/e2e/faults-kill.t tests/e2e/interrupts.t \
           tests/e2e/new-qemu-killed.t tests/e2e/settings-after.t tests/e2e/low-memory.t
check-load: all units
	QU_BIN=$(abspath $(BUILD)/qemu-upgrade-test) QU_REPEAT=4 tests/under-load.sh 2 prove --exec '' $(LOAD_E2E)

demo: all
	tests/demo.sh $(abspath $(BUILD)/qemu-upgrade)

install: all
	install -D -m 0755 $(BUILD)/qemu-upgrade $(DESTDIR)$(PREFIX)/bin/qemu-upgrade
	install -D -m 0644 $(BUILD)/libqemu-upgrade.a $(DESTDIR)$(PREFIX)/lib/libqemu-upgrade.a
	install -D -m 0644 include/qemu-upgrade.h $(DESTDIR)$(PREFIX)/include/qemu-upgrade.h
	install -D -m 0644 docs/qemu-upgrade.1 $(DESTDIR)$(PREFIX)/share/man/man1/qemu-upgrade.1
	mkdir -p $(DESTDIR)$(SYSCONFDIR)/apt/apt.conf.d
	sed 's|@BINDIR@|$(PREFIX)/bin|g' qemu-integration/hooks/apt-90qemu-upgrade.in \
		>$(DESTDIR)$(SYSCONFDIR)/apt/apt.conf.d/90qemu-upgrade
	[ -e $(DESTDIR)$(SYSCONFDIR)/qemu-upgrade.conf ] || \
		install -D -m 0644 qemu-integration/hooks/qemu-upgrade.conf $(DESTDIR)$(SYSCONFDIR)/qemu-upgrade.conf
	install -D -m 0644 qemu-integration/hooks/rpm-qemu-upgrade.filetrigger \
		$(DESTDIR)$(PREFIX)/share/qemu-upgrade/rpm-qemu-upgrade.filetrigger
	mkdir -p $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|@BINDIR@|$(PREFIX)/bin|g' qemu-integration/hooks/qemu-upgrade-agent.service \
		>$(DESTDIR)$(PREFIX)/lib/systemd/system/qemu-upgrade-agent.service

clean:
	rm -rf build

.PHONY: all units check check-unit check-load demo install clean
-include $(LIB_OBJ:.o=.d) $(BUILD)/upgrade/main.d
include tests/fuzz/fuzz.mk
