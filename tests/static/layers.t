#!/usr/bin/env bash
# The layer rule (README, "Layout"): each file belongs to one floor, and includes only files
# of its own floor or below:
#   0 toolbox          descriptors, processes, files, logging, the stream and the launcher
#   1 QEMU knowledge   qemu-integration/: QMP, command lines, probes, the VM's facts
#   2 remote           remote/: the other host's side and the wire to it
#   3 pipeline         upgrade/: inspect, plan, the transaction and its strategies, settle
#   4 CLI              upgrade/main.c
# Every source and header must be placed: a new file fails this test until it is.
cd "$(dirname "$0")/../.." || exit 1

toolbox_files="clock io log kv stream launcher run safepath sandbox testhooks fault config context
	ptyrelay spawn paths systemd memory statedir threadcg"

# layer FILE: the floor of FILE (a path from the top), or nothing when it is not placed.
layer() {
	local f=$1 base
	case $f in
	upgrade/main.c) echo 4; return ;;
	upgrade/fdpass/*) echo 0; return ;;
	upgrade/strategy.h) echo 0; return ;; # the strategies' names: a vocabulary, no code
	qemu-integration/*) echo 1; return ;;
	remote/*) echo 2; return ;;
	upgrade/pageflip/*|include/qemu-upgrade.h) echo 3; return ;;
	upgrade/*.[ch])
		base=${f#upgrade/}
		base=${base%.?}
		for t in $toolbox_files; do [ "$t" = "$base" ] && { echo 0; return; }; done
		echo 3 ;;
	esac
}

names=(toolbox "QEMU knowledge" remote pipeline CLI)
files=$(git ls-files 'upgrade/*.[ch]' 'qemu-integration/*.[ch]' 'remote/*.[ch]' include/qemu-upgrade.h 2>/dev/null)
[ -n "$files" ] || files=$(find upgrade qemu-integration remote include -name '*.[ch]' | sort)
echo "1..2"
unplaced=
for f in $files; do [ -n "$(layer "$f")" ] || unplaced+=" $f"; done
[ -z "$unplaced" ]
echo "$( [ $? = 0 ] && echo ok || echo not ok ) 1 - every file has a floor${unplaced:+ (not placed:$unplaced)}"

bad=0
for f in $files; do
	from=$(layer "$f")
	[ -n "$from" ] || continue
	while IFS=: read -r line inc; do
		inc=${inc#*\"}
		inc=${inc%\"*}
		[ "$inc" = qemu-upgrade.h ] && inc=include/qemu-upgrade.h
		to=$(layer "$inc")
		[ -n "$to" ] || continue # a system header
		if [ "$to" -gt "$from" ]; then
			echo "# $f:$line (${names[$from]}) includes $inc (${names[$to]})"
			bad=$((bad + 1))
		fi
	done < <(grep -n '^#include "' "$f")
done
[ "$bad" = 0 ]
echo "$( [ $? = 0 ] && echo ok || echo not ok ) 2 - no file includes one of a higher floor ($bad do)"
