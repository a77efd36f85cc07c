#!/usr/bin/env bash
# Who links what. The command runs on the shared library (from the build tree through an
# $ORIGIN RUNPATH; installed, through ld.so's search path, or a RUNPATH to a LIBDIR outside
# it), the build for tests carries its own static copy with the test hooks, and the shared
# library honours no test hook: QEMU_UPGRADE_CONF (upgrade/testhooks.h) names a configuration
# only the build for tests reads.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/library.sh"

tap_plan 10
cli=$QU_BUILD/qemu-upgrade
tap_is "$(dyn_tag "$cli" NEEDED | grep -cx "$QU_SONAME")/$(dyn_tag "$cli" RUNPATH)" '1/$ORIGIN' \
	"build/qemu-upgrade needs $QU_SONAME and finds it beside itself (RUNPATH \$ORIGIN)"
loaded=$(ldd "$cli" | sed -n "s/^[[:space:]]*$QU_SONAME => \([^ ]*\) .*/\1/p")
tap_is "$(readlink -f "$loaded")" "$(readlink -f "$QU_BUILD/$QU_SONAME")" "from the build tree it loads the build's library"
"$cli" --help >/dev/null
tap_ok $? "it runs (--help)"

! dyn_tag "$QU_BUILD/qemu-upgrade-test" NEEDED | grep -q libqemu-upgrade
tap_ok $? "the build for tests does not load the shared library (its test hooks are its own)"

# --all over a binary nobody runs touches no VM, but reads the configuration first.
printf 'no_such_setting = 1\n' >"$QU_TMP/bad.conf"
all() { QEMU_UPGRADE_CONF=$QU_TMP/bad.conf "$1" --all --dry-run --binary /nonexistent/qemu-system-x86_64 >/dev/null 2>&1; }
all "$QU_BUILD/qemu-upgrade-test"
tap_is "$?" 2 "the build for tests reads the configuration QEMU_UPGRADE_CONF names (and refuses its bad setting)"
all "$cli"
tap_is "$?" 0 "the command on the shared library ignores QEMU_UPGRADE_CONF"

inst=$QU_STAGE$QU_PREFIX/bin/qemu-upgrade
tap_is "$(dyn_tag "$inst" NEEDED | grep -c libqemu-upgrade)/$(dyn_tag "$inst" RUNPATH; dyn_tag "$inst" RPATH)" "1/" \
	"installed in $QU_PREFIX, the command needs the shared library and carries no RUNPATH"
LD_LIBRARY_PATH=$QU_STAGE$QU_LIBDIR "$inst" --help >/dev/null
tap_ok $? "it runs once the library's directory is searched (as ldconfig makes it)"
opt=$QU_STAGE_OPT$QU_OPT_PREFIX
tap_is "$(dyn_tag "$opt/bin/qemu-upgrade" RUNPATH)" "$QU_OPT_PREFIX/lib" \
	"installed in $QU_OPT_PREFIX, which ld.so does not search, it carries RUNPATH $QU_OPT_PREFIX/lib"
[ -f "$opt/lib/$QU_SONAME" ] && [ "$(readlink "$opt/lib/libqemu-upgrade.so")" = "$QU_SONAME" ] &&
	[ -f "$opt/lib/pkgconfig/qemu-upgrade.pc" ] && [ -f "$opt/include/qemu-upgrade.h" ] && [ ! -e "$opt/lib/libqemu-upgrade.a" ]
tap_ok $? "with the library, its link, the .pc and the header beside it (and no static archive)"
tap_done
