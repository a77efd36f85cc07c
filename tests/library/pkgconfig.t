#!/usr/bin/env bash
# A consumer of the installed library, as a management daemon's build is one: pkg-config finds
# qemu-upgrade.pc in a `make install DESTDIR=...`, and examples/upgrade-one.c builds with its
# flags alone (the installed header, the installed library) and runs on that library.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/library.sh"

tap_plan 6
export PKG_CONFIG_PATH=$QU_STAGE$QU_LIBDIR/pkgconfig PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_SYSROOT_DIR=$QU_STAGE
flags=$(pkg-config --cflags --libs qemu-upgrade 2>&1)
tap_ok $? "pkg-config knows qemu-upgrade" || tap_diag "$flags"
grep -q -- "-L$QU_STAGE$QU_LIBDIR" <<<"$flags" && grep -q -- '-lqemu-upgrade' <<<"$flags"
tap_ok $? "its flags name the installed library"

# Strict flags and nothing from the source tree: only what pkg-config says.
# shellcheck disable=SC2086 # flag lists
err=$("$CC" -std=c99 -pedantic -Wall -Wextra -Werror $QU_SANITIZE -o "$QU_TMP/upgrade-one" \
	"$QU_ROOT/examples/upgrade-one.c" $flags 2>&1)
tap_ok $? "examples/upgrade-one.c builds with those flags" || tap_diag "$err"
tap_is "$(dyn_tag "$QU_TMP/upgrade-one" NEEDED | grep -c libqemu-upgrade)" 1 "it needs the shared library"

export LD_LIBRARY_PATH=$QU_STAGE$QU_LIBDIR
loaded=$(ldd "$QU_TMP/upgrade-one" | sed -n "s/^[[:space:]]*$QU_SONAME => \([^ ]*\) .*/\1/p")
tap_is "$loaded" "$QU_STAGE$QU_LIBDIR/$QU_SONAME" "it loads the installed library"
# A process that has just exited: the library looks for it, fails and reports (no VM needed).
true &
gone=$!
wait "$gone"
out=$("$QU_TMP/upgrade-one" "$gone" 2>"$QU_TMP/err")
rc=$?
tap_is "$rc/$(jq -r .error <<<"$out")" "1/no process with PID $gone" \
	"it runs: an upgrade of a PID that has gone fails with the library's report"
[ "$rc" = 1 ] || tap_diag "$(cat "$QU_TMP/err")"
tap_done
