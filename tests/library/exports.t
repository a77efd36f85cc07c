#!/usr/bin/env bash
# libqemu-upgrade.so exports exactly the functions include/qemu-upgrade.h declares: none
# missing (a daemon would fail to link), none extra (a daemon could come to depend on the
# engine's internals), each under its version node (QEMU_UPGRADE_0, QEMU_UPGRADE_1), and no data. The header's
# list comes from the compiler (-aux-info: every prototype it saw, with the file it came
# from), not from reading the text, where comments name functions too.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/library.sh"

tap_plan 6
so=$QU_BUILD/$QU_SONAME
printf '#include <qemu-upgrade.h>\n' >"$QU_TMP/alone.c"
"$CC" -std=c99 -fsyntax-only -aux-info "$QU_TMP/aux" -I"$QU_ROOT/include" "$QU_TMP/alone.c" >"$QU_TMP/cc.out" 2>&1 ||
	tap_diag "$(cat "$QU_TMP/cc.out")"
# "/* FILE:LINE:NC */ extern int qu_set_pid (struct qu_handle *, pid_t);": the word before the
# first " (".
declared=$(grep -F "/* $QU_HEADER:" "$QU_TMP/aux" | sed 's|^/\*[^*]*\*/ ||; s/ (.*//; s/.*[ *]//' | sort -u)
n=$(grep -c . <<<"$declared")
# A parse that found nothing would make every comparison below pass.
[ "$n" -ge 20 ] && grep -qx qu_new <<<"$declared" && grep -qx qu_upgrade <<<"$declared"
tap_ok $? "the compiler lists the header's functions ($n, qu_new and qu_upgrade among them)"

dyn=$(nm -D --defined-only "$so")
exported=$(awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' <<<"$dyn" | sort -u)

# same LIST1 LIST2: equal, else the difference as diagnostics.
same() {
	local d
	d=$(diff <(echo "$1") <(echo "$2")) && return 0
	tap_diag "only in the header (<) or only in the library (>):"
	while IFS= read -r l; do tap_diag "  $l"; done <<<"$(grep '^[<>]' <<<"$d")"
	return 1
}
# The comparison itself fails on a list one name short: it cannot pass by accident.
! same "$declared" "$(sed 1d <<<"$declared")" >/dev/null
tap_ok $? "the comparison tells two lists one name apart"
same "$declared" "$exported"
tap_ok $? "the library exports exactly the functions the header declares"

# Every exported symbol is a function (T) bound to a version node; the nodes are the only
# absolute (A) symbols. QEMU_UPGRADE_0 holds the first release's functions, QEMU_UPGRADE_1
# (which inherits it) standby's start, status, stop and switchover: an old function never moves.
v1="qu_standby_start qu_standby_status qu_standby_stop qu_standby_switchover"
bad=$(awk -v v1=" $v1 " '$2 == "A" && $3 !~ /^QEMU_UPGRADE_[01]$/ || $2 != "A" && $2 != "T" ||
	$2 == "T" && (index(v1, " " substr($3, 1, index($3, "@") - 1) " ") ? $3 !~ /@@QEMU_UPGRADE_1$/ : $3 !~ /@@QEMU_UPGRADE_0$/)' <<<"$dyn")
[ -z "$bad" ] && grep -q ' A QEMU_UPGRADE_0$' <<<"$dyn" && grep -q ' A QEMU_UPGRADE_1$' <<<"$dyn"
tap_ok $? "every export is a function of its version node (QEMU_UPGRADE_0, standby's in QEMU_UPGRADE_1)" || tap_diag "$bad"

tap_is "$(dyn_tag "$so" SONAME)" "$QU_SONAME" "its SONAME is $QU_SONAME"
tap_is "$(readlink "$QU_BUILD/libqemu-upgrade.so")" "$QU_SONAME" "libqemu-upgrade.so links to it (for -lqemu-upgrade)"
tap_done
