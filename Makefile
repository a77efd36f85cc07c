# qemu-upgrade: `make` builds the library and the CLI, `make check` runs the whole TAP suite.
# `make ASAN=1 check-unit` runs the unit tests under AddressSanitizer and UBSan.
PREFIX  ?= /usr/local
# A Debian package: PREFIX=/usr LIBDIR=/usr/lib/$(cc -print-multiarch).
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR ?=
SYSCONFDIR ?= /etc
CC      ?= cc
# The ABI's version: the SONAME's number, and the pkg-config Version (no releases yet).
VERSION  = 0
SONAME   = libqemu-upgrade.so.$(VERSION)

ifeq ($(ASAN),1)
BUILD   ?= build/asan
SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD   ?= build
SANITIZE =
endif

PKGS     = json-c zlib libcap libssl libcrypto libseccomp libxml-2.0
WARN     = -Wall -Wextra -Werror -Wvla -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wframe-larger-than=16384 -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) $(SANITIZE) -fPIC -D_GNU_SOURCE -Iinclude -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(SANITIZE) $(shell pkg-config --libs $(PKGS))

LIB_SRC  = $(wildcard upgrade/*.c upgrade/fdpass/*.c upgrade/pageflip/*.c qemu-integration/*.c remote/*.c remote/*/*.c)
LIB_SRC := $(filter-out upgrade/main.c,$(LIB_SRC))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(wildcard tests/unit/test-*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.t)
E2E      = $(wildcard tests/e2e/*.t)
STATIC   = $(wildcard tests/static/*.t)

LIB_SO   = $(BUILD)/$(SONAME)
LIB_SYMS = lib/libqemu-upgrade.syms
# The shared library's own tests (header, exports, linkage, pkg-config), in shell.
LIB_TESTS = $(wildcard tests/library/*.t)

all: $(BUILD)/qemu-upgrade $(BUILD)/libqemu-upgrade.so $(BUILD)/libqemu-upgrade.a $(BUILD)/examples/upgrade-one

# Objects are compiled again when the compiler or its flags change (-fPIC came in with the
# shared library; an old object without it cannot go into one).
$(BUILD)/cflags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(CFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS)' >$@

$(BUILD)/%.o: %.c $(BUILD)/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The static archive: every internal function, for the unit tests and the build for tests
# (both need what the shared library hides). Not installed.
$(BUILD)/libqemu-upgrade.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

# The shared library exports the public header's functions and nothing else ($(LIB_SYMS)).
# -z defs: it names every library it needs; --no-undefined-version: every name in the script
# is defined.
$(LIB_SO): $(LIB_OBJ) $(LIB_SYMS)
	$(CC) -shared -o $@ -Wl,-soname,$(SONAME) -Wl,--version-script=$(LIB_SYMS) -Wl,-z,defs \
		-Wl,--no-undefined-version $(LIB_OBJ) $(LDLIBS)

$(BUILD)/libqemu-upgrade.so: $(LIB_SO)
	ln -sf $(SONAME) $@

# The command and the example link against the shared library as a daemon does. In the build
# tree they find it through an $$ORIGIN-relative RUNPATH (tests and `make demo` run them here).
$(BUILD)/qemu-upgrade: $(BUILD)/upgrade/main.o $(LIB_SO)
	$(CC) $(SANITIZE) -o $@ $^ -Wl,-rpath,'$$ORIGIN'

$(BUILD)/examples/upgrade-one: $(BUILD)/examples/upgrade-one.o $(LIB_SO)
	$(CC) $(SANITIZE) -o $@ $^ -Wl,-rpath,'$$ORIGIN/..'

$(BUILD)/tests/unit/%.t: $(BUILD)/tests/unit/%.o $(BUILD)/upgrade/testhooks-on.o $(BUILD)/libqemu-upgrade.a
	$(CC) -o $@ $^ $(LDLIBS) -lcmocka

# The build for tests: the same tool, plus the test hooks (upgrade/testhooks.h), which the
# installed qemu-upgrade never honours. Linked ahead of the static library, testhooks-on.o takes
# the place of the library's testhooks.o; the shared library holds only the hooks-off one.
$(BUILD)/upgrade/testhooks-on.o: upgrade/testhooks.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DQU_TEST_HOOKS -MMD -MP -c -o $@ $<

$(BUILD)/qemu-upgrade-test: $(BUILD)/upgrade/main.o $(BUILD)/upgrade/testhooks-on.o $(BUILD)/libqemu-upgrade.a
	$(CC) -o $@ $^ $(LDLIBS)

HELPERS  = $(BUILD)/tests/helpers/tapopen $(BUILD)/tests/helpers/evilpreload.so $(BUILD)/tests/helpers/seccompwrap \
	   $(BUILD)/tests/helpers/fakedaemon $(BUILD)/tests/helpers/tapqueues

$(BUILD)/tests/helpers/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/tests/helpers/%.so: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(SANITIZE),$(CFLAGS)) -fPIC -shared -o $@ $< -ldl

units: $(UNIT_BIN) $(HELPERS) $(BUILD)/qemu-upgrade-test

# `make install` into $(BUILD)/stage, for tests/library/ to use as a consumer would, and again
# into $(BUILD)/stage-opt for a PREFIX ld.so does not search.
STAGE_OPT_PREFIX = /opt/qemu-upgrade
stage: all
	rm -rf $(BUILD)/stage $(BUILD)/stage-opt
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(BUILD)/stage)
	$(MAKE) --no-print-directory install DESTDIR=$(abspath $(BUILD)/stage-opt) PREFIX=$(STAGE_OPT_PREFIX) \
		LIBDIR=$(STAGE_OPT_PREFIX)/lib SYSCONFDIR=$(STAGE_OPT_PREFIX)/etc

LIB_TEST_ENV = QU_BUILD=$(abspath $(BUILD)) QU_STAGE=$(abspath $(BUILD)/stage) QU_PREFIX=$(PREFIX) \
	       QU_STAGE_OPT=$(abspath $(BUILD)/stage-opt) QU_OPT_PREFIX=$(STAGE_OPT_PREFIX) \
	       QU_LIBDIR=$(LIBDIR) QU_INCLUDEDIR=$(INCLUDEDIR) QU_SONAME=$(SONAME) QU_SANITIZE='$(SANITIZE)' \
	       CC='$(CC)' CXX='$(CXX)'

# Unit tests: fast, no VM. Safe under ASan.
check-unit: all units stage
	$(LIB_TEST_ENV) tests/run/prove.sh $(BUILD)/test-logs/unit $(UNIT_BIN) $(STATIC) $(LIB_TESTS)

# The whole suite: unit tests plus end-to-end tests against real QEMU, two at a time.
check: all units stage
	$(LIB_TEST_ENV) QU_BIN=$(abspath $(BUILD)/qemu-upgrade-test) tests/run/prove.sh $(BUILD)/test-logs/check -j2 \
		$(UNIT_BIN) $(STATIC) $(LIB_TESTS) $(E2E)

# The fault and interrupt tests with two CPUs kept busy, each new-QEMU kill repeated: they
# must pass on a loaded machine as on an idle one (CI runs this too).
LOAD_E2E = tests/e2e/faults-error.t tests/e2e/faults-kill.t tests/e2e/interrupts.t \
           tests/e2e/new-qemu-killed.t tests/e2e/settings-after.t tests/e2e/low-memory.t
check-load: all units
	QU_BIN=$(abspath $(BUILD)/qemu-upgrade-test) QU_REPEAT=4 tests/under-load.sh 2 \
		tests/run/prove.sh $(BUILD)/test-logs/load $(LOAD_E2E)

demo: all
	tests/demo.sh $(abspath $(BUILD)/qemu-upgrade)

# Where ld.so finds a library with no RUNPATH: its own directories, and Debian's /usr/local
# ones (/etc/ld.so.conf.d/libc.conf, once ldconfig ran). The command make install puts in place
# is linked there and then (as libtool relinks on install), into DESTDIR only, so installs to
# two prefixes at once cannot mix: with no RUNPATH when LIBDIR is one of these (a Debian
# package's binaries carry none), else with RUNPATH LIBDIR, so that it runs in any PREFIX.
MULTIARCH  := $(shell $(CC) -print-multiarch 2>/dev/null)
LD_SO_DIRS  = /lib /usr/lib /lib/$(MULTIARCH) /usr/lib/$(MULTIARCH) /usr/local/lib /usr/local/lib/$(MULTIARCH)
INSTALL_RUNPATH = $(if $(filter $(LIBDIR),$(LD_SO_DIRS)),,-Wl,-rpath,$(LIBDIR))

# The shared library only: a static archive would hand a consumer every internal function.
install: all
	mkdir -p $(DESTDIR)$(PREFIX)/bin
	$(CC) $(SANITIZE) -o $(DESTDIR)$(PREFIX)/bin/qemu-upgrade $(BUILD)/upgrade/main.o $(LIB_SO) $(INSTALL_RUNPATH)
	install -D -m 0644 $(LIB_SO) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libqemu-upgrade.so
	install -D -m 0644 include/qemu-upgrade.h $(DESTDIR)$(INCLUDEDIR)/qemu-upgrade.h
	mkdir -p $(DESTDIR)$(LIBDIR)/pkgconfig
	sed -e '/^#/d' -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' lib/qemu-upgrade.pc.in >$(DESTDIR)$(LIBDIR)/pkgconfig/qemu-upgrade.pc
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
	@# Installed for real (no DESTDIR), as root, where ld.so looks: its cache learns the new
	@# library, as a package's ldconfig trigger does (elsewhere the RUNPATH finds it).
	$(if $(DESTDIR)$(INSTALL_RUNPATH),,[ "$$(id -u)" != 0 ] || ldconfig)

clean:
	rm -rf build

.PHONY: all units stage check check-unit check-load demo install clean FORCE
# Objects made on the way to a test binary stay: make's removal of them printed a long line
# after a failing run, where CI's tail should show the failure (tests/run/failures.sh).
.SECONDARY:
# Unit tests too: a header they share with the library (a struct that grew) rebuilds them.
-include $(LIB_OBJ:.o=.d) $(UNIT_BIN:.t=.d) $(BUILD)/upgrade/main.d $(BUILD)/examples/upgrade-one.d
include tests/fuzz/fuzz.mk
