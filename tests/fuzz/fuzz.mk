# libFuzzer targets for every parser of untrusted bytes (tests/fuzz/README.md).
#   make fuzz                        builds build/fuzz/fuzz-* with clang, ASan and UBSan
#   make fuzz-run [FUZZ_SECONDS=N]   runs each over a copy of its seed corpus; fails on a crash
# The library is compiled again for them, with clang and the same sanitizers, into
# build/fuzz/obj (the gcc objects of build/ have no coverage instrumentation).
FUZZ_CC      ?= $(shell command -v clang-14 || command -v clang || echo clang)
FUZZ_BUILD    = build/fuzz
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -O1 -g -std=gnu11 $(WARN) -Wno-format-nonliteral -D_GNU_SOURCE -Iinclude -I. $(shell pkg-config --cflags $(PKGS))
FUZZ_LDLIBS   = $(shell pkg-config --libs $(PKGS))
FUZZ_SECONDS ?=
FUZZ_JOBS    ?= 2

FUZZ_OBJ  = $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
# The test hooks on (upgrade/testhooks.h): the config file and the state directory are
# private ones, named by the environment (linked ahead of the library, as for the unit tests).
FUZZ_HOOKS = $(if $(wildcard upgrade/testhooks.c),$(FUZZ_BUILD)/obj/upgrade/testhooks-on.o)
FUZZ_SRC  = $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_BIN  = $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/obj/upgrade/testhooks-on.o: upgrade/testhooks.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -DQU_TEST_HOOKS -MMD -MP -c -o $@ $<

$(FUZZ_BUILD)/libqemu-upgrade-fuzz.a: $(FUZZ_OBJ)
	$(AR) rcs $@ $^

$(FUZZ_BIN): $(FUZZ_BUILD)/%: $(FUZZ_BUILD)/obj/tests/fuzz/%.o $(FUZZ_HOOKS) $(FUZZ_BUILD)/libqemu-upgrade-fuzz.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LDLIBS)

fuzz: $(FUZZ_BIN)

fuzz-run: fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh $(FUZZ_BIN)

.PHONY: fuzz fuzz-run
-include $(FUZZ_OBJ:.o=.d) $(FUZZ_HOOKS:.o=.d) $(FUZZ_SRC:%.c=$(FUZZ_BUILD)/obj/%.d)
