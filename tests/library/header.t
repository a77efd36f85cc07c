#!/usr/bin/env bash
# The public header stands on its own, as libnbd's does: it compiles alone as strict C99 and
# as C++, and a C++ program that calls the library links against the shared library (the
# extern "C" block: without it the names would be mangled and the link would fail).
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/library.sh"

tap_plan 6
printf '#include <qemu-upgrade.h>\n' >"$QU_TMP/alone.c"
err=$("$CC" -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$QU_ROOT/include" "$QU_TMP/alone.c" 2>&1)
tap_ok $? "the header alone compiles as C99 (-pedantic -Wall -Wextra -Werror)" || tap_diag "$err"
printf '#include <qemu-upgrade.h>\n#include <qemu-upgrade.h>\n' >"$QU_TMP/twice.c"
err=$("$CC" -std=c99 -pedantic -Wall -Werror -fsyntax-only -I"$QU_ROOT/include" "$QU_TMP/twice.c" 2>&1)
tap_ok $? "included twice, it compiles (include guard)" || tap_diag "$err"
cp "$QU_TMP/alone.c" "$QU_TMP/alone.cc"
err=$("$CXX" -std=c++11 -pedantic -Wall -Wextra -Werror -fsyntax-only -I"$QU_ROOT/include" "$QU_TMP/alone.cc" 2>&1)
tap_ok $? "the header alone compiles as C++11" || tap_diag "$err"

# A C++ program: one handle, a refused call, the per-thread error and errno.
cat >"$QU_TMP/call.cc" <<'CC'
#include <qemu-upgrade.h>
#include <cstdio>

int main()
{
	struct qu_handle *h = qu_new();
	if (!h)
		return 2;
	int r = qu_set_pid(h, 0);
	std::printf("%d %d %s\n", r, qu_get_errno(), qu_get_error());
	qu_free(h);
	return 0;
}
CC
# shellcheck disable=SC2086 # QU_SANITIZE is a list of flags
err=$("$CXX" -std=c++11 -Wall -Wextra -Werror $QU_SANITIZE -I"$QU_ROOT/include" -o "$QU_TMP/call" "$QU_TMP/call.cc" \
	-L"$QU_BUILD" -lqemu-upgrade -Wl,-rpath,"$QU_BUILD" 2>&1)
tap_ok $? "a C++ program calling the library links against libqemu-upgrade.so" || tap_diag "$err"
dyn_tag "$QU_TMP/call" NEEDED | grep -qx "$QU_SONAME"
tap_ok $? "it needs $QU_SONAME (the shared library, not a copy)"
out=$("$QU_TMP/call" 2>&1)
tap_is "$out" "-1 22 invalid PID: give the PID of a running QEMU" "it runs: qu_set_pid(0) fails with EINVAL and the message"
tap_done
