#!/usr/bin/env bash
# colo-pair.sh QEMU_BINARY: one COLO experiment (issue 16 research, docs/standby-research.md).
#
# Two "hosts" (network namespaces colo-a-PID and colo-b-PID joined by a veth, 10.88.0.1 and
# 10.88.0.2), each with a tap "ctap0" whose host side is 192.168.88.1; the memory-checking guest
# (tests/guest) at 192.168.88.10 with a virtio-net NIC and an IDE disk on a quorum node. The
# primary runs in A and the secondary in B, wired as QEMU's docs/system/qemu-colo.rst shows
# (filter-mirror, filter-redirector, colo-compare on A; filter-redirector, filter-rewriter and
# a replication node under quorum on B). Then: COLO is entered, checkpoints are counted for
# COLO_PROTECT_S seconds while A's host pings the guest, a disk write is made through the
# primary's quorum node, the primary is SIGKILLed, the secondary is failed over
# (nbd-server-stop, x-colo-lost-heartbeat, its redirectors removed) and checked: run state,
# memcheck, the disk write, pings from B's host.
#
# Settings (environment), each explained where it is used: COLO_DELAY (x-checkpoint-delay,
# ms, default 1000), COLO_PROTECT_S (default 20), COLO_LIVE (1: the primary boots and runs
# memcheck before COLO starts, the default; 0: it waits with -S and the guest boots under
# COLO, as qemu-colo.rst does), COLO_MACHINE (q35, or pc), COLO_RUNTIME, COLO_MINIMAL,
# COLO_GUEST_NET, COLO_CHANNEL (tcp, unix, relay or fd; COLO_RELAY_ONLY=migration or others), COLO_RAM (anon, memfd or memfd-primary), COLO_FAULT (kill or cut), COLO_GDB, COLO_TRACE_VMSTATE, COLO_OUT (a
# directory that keeps every log; default a temporary one, removed at exit),
# COLO_STOP (live, the default: the primary runs through the initial copy; before: QMP stop
# on the primary before `migrate`; syncN, e.g. sync2: stop once query-migrate shows
# dirty-sync-count >= N; in both the primary resumes once COLO is entered, and the pause is
# reported as initial_pause_ms), COLO_PLAIN=1 (no COLO: a plain precopy migration over the
# same channel to a secondary started with only -incoming, then the destination's checker).
# Output: "# ..." progress lines and "RESULT key=value" lines on stdout. Exit 0 only if every
# step worked (a failed step prints what it saw and the script goes on where it can).
# Every process it starts is killed by PID, the namespaces are deleted at exit.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/vm.sh
. "$here/../lib/vm.sh"
Q=${1:?usage: colo-pair.sh QEMU_BINARY}
DELAY=${COLO_DELAY:-1000}
PROTECT_S=${COLO_PROTECT_S:-20}
LIVE=${COLO_LIVE:-1}
NSA=colo-a-$$ NSB=colo-b-$$
A_IP=10.88.0.1 B_IP=10.88.0.2 HOST_IP=192.168.88.1 GUEST_IP=192.168.88.10
MAC=52:54:00:88:00:10
failures=0

say() { echo "# $*"; }
result() { echo "RESULT $1=$2"; }
fail() { failures=$((failures + 1)); echo "# FAILED: $*"; }

# ---------------------------------------------------------------- setup
if [ -n "${COLO_OUT:-}" ]; then
	W=$COLO_OUT
	mkdir -p "$W"
else
	W=$(mktemp -d /tmp/colo-probe.XXXXXX)
	_vm_paths+=("$W")
fi
W=$(cd "$W" && pwd)
mkdir -p "$W/a" "$W/b"
vm_guest_build || exit 1
"$Q" --version | head -n 1 | sed 's/^/# /'
result qemu "$("$Q" --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')"

ip netns add "$NSA" && ip netns add "$NSB" || exit 1
vm_defer "ip netns del $NSA; ip netns del $NSB"
ip link add "cva$$" netns "$NSA" type veth peer name "cvb$$" netns "$NSB" || exit 1
ip -n "$NSA" addr add "$A_IP/24" dev "cva$$"
ip -n "$NSB" addr add "$B_IP/24" dev "cvb$$"
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set "cva$$" up && ip -n "$NSB" link set "cvb$$" up || exit 1

# The disk: the primary's image and its copy on B (qemu-colo.rst: "needs to be copied to all
# hosts"), B's active and hidden images of the same size.
qemu-img create -q -f qcow2 "$W/a/primary.qcow2" 64M &&
	cp "$W/a/primary.qcow2" "$W/b/primary.qcow2" &&
	qemu-img create -q -f qcow2 "$W/b/secondary-active.qcow2" 64M &&
	qemu-img create -q -f qcow2 "$W/b/secondary-hidden.qcow2" 64M || exit 1

# chardev reconnect: 7.2 knows only reconnect=SECONDS, 11.1 only reconnect-ms (9.2 added it).
if "$Q" -chardev socket,help 2>&1 | grep -q reconnect-ms; then reconnect="reconnect-ms=1000"; else reconnect="reconnect=1"; fi

# COLO_GUEST_NET=0: the guest does not load virtio-net (the NIC is there, unused), to tell
# whether a failure comes from the NIC's state.
# COLO_MINIMAL=1: no NIC, no disk, no filters, no replication: RAM and CPU state only, to
# tell whether a failure comes from the machine itself or from the devices COLO adds.
MIN=${COLO_MINIMAL:-0}
guest_net=" net_ip=$GUEST_IP/24"
[ "${COLO_GUEST_NET:-1}" = 1 ] && [ "$MIN" != 1 ] || guest_net=""
TRACE=(-msg timestamp=on -trace 'colo_*' -trace vm_state_notify -trace 'migrate_set_state')
# COLO_TRACE_VMSTATE=1: every device state section loaded is traced too, so that the last one
# before a secondary's abort names the device.
[ "${COLO_TRACE_VMSTATE:-0}" = 1 ] && TRACE+=(-trace vmstate_load_state -trace vmstate_load_state_end -trace qemu_loadvm_state_section_startfull)
# COLO_RAM=memfd: guest RAM in a shared memfd on both sides, as the VMs this tool upgrades
# zero-copy have it (README, "What it needs from the VM"); memfd-primary: on A only, B's RAM
# a private memory-backend-ram of the same name; default: anonymous RAM on both.
memfd_ram=(-machine "${COLO_MACHINE:-q35},memory-backend=mem0" -object "memory-backend-memfd,id=mem0,size=256M,share=on")
anon_ram=(-machine "${COLO_MACHINE:-q35}")
case ${COLO_RAM:-anon} in
memfd) ram_a=("${memfd_ram[@]}") ram_b=("${memfd_ram[@]}") ;;
memfd-primary)
	# The RAM block must keep its name (mem0) for the stream to load: B gets a private one.
	ram_a=("${memfd_ram[@]}")
	ram_b=(-machine "${COLO_MACHINE:-q35},memory-backend=mem0" -object "memory-backend-ram,id=mem0,size=256M") ;;
*) ram_a=("${anon_ram[@]}") ram_b=("${anon_ram[@]}") ;;
esac
common=(-accel tcg -m 256M -smp 1 -nodefaults -display none
	-kernel "$VM_KERNEL" -initrd "$VM_INITRD"
	-append "$VM_CMDLINE memcheck_mib=${VM_MEMCHECK_MIB:-32}${guest_net}"
	)
[ "$MIN" = 1 ] || common+=(-netdev "tap,id=hn0,ifname=ctap0,script=no,downscript=no,vhost=off,vnet_hdr=off"
	-device "virtio-net-pci,id=e0,netdev=hn0,mac=$MAC,romfile=")

# start_qemu NS DIR ARGS...: QEMU daemonized in NS with QMP at DIR/qmp.sock, a second QMP
# socket DIR/ev.sock for the event log, the serial console in DIR/serial.log, traces in
# DIR/trace.log. In the background: the primary's compare1 chardev (wait=on) holds its start
# until the secondary connects.
start_qemu() {
	local ns=$1 d=$2
	shift 2
	echo "ip netns exec $ns $Q ${common[*]} $* -chardev file,id=serial0,path=$d/serial.log -serial chardev:serial0 -qmp unix:$d/qmp.sock,server=on,wait=off -qmp unix:$d/ev.sock,server=on,wait=off ${TRACE[*]} -D $d/trace.log -daemonize -pidfile $d/qemu.pid" >"$d/cmdline"
	ip netns exec "$ns" "$Q" "${common[@]}" "$@" \
		-chardev "file,id=serial0,path=$d/serial.log" -serial chardev:serial0 \
		-qmp "unix:$d/qmp.sock,server=on,wait=off" -qmp "unix:$d/ev.sock,server=on,wait=off" \
		"${TRACE[@]}" -D "$d/trace.log" -daemonize -pidfile "$d/qemu.pid" 2>"$d/qemu.err" &
	vm_track_pid $! 2>/dev/null
	# If the script stops before it reads the pidfile, QEMU still goes, by the PID it wrote.
	vm_defer "[ -s '$d/qemu.pid' ] && kill -KILL \$(cat '$d/qemu.pid') 2>/dev/null"
}

# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds; says what it waited for.
wait_for() {
	local t=$1 what=$2 end
	shift 2
	end=$((SECONDS + t))
	until "$@"; do
		[ $SECONDS -lt $end ] || { say "timeout ($t s) waiting for $what"; return 1; }
		sleep 0.2
	done
}

# qmp DIR JSON: one command on that QEMU's monitor; prints its reply line. Unlike vm_qmp,
# events are skipped even when they hold the word "error" (COLO_EXIT's "reason": "error").
_reply() {
	local line
	while IFS= read -r -t "${QMP_T:-20}" line <&"$in"; do
		case $line in *'"event"'*) continue ;; *'"return"'* | *'"error"'*) reply=${line%$'\r'}; return 0 ;; esac
	done
	return 1
}
qmp() {
	local in out pid reply="" line
	coproc _Q { exec timeout 30 socat -t 0.2 - "UNIX-CONNECT:$1/qmp.sock" 2>/dev/null; }
	in=${_Q[0]} out=${_Q[1]} pid=$_Q_PID
	if read -r -t "${QMP_T:-20}" line <&"$in" && echo '{"execute":"qmp_capabilities"}' >&"$out" && _reply &&
		echo "$2" >&"$out" && _reply; then
		echo "$reply"
	fi
	{ exec {out}>&- {in}<&-; } 2>/dev/null
	wait "$pid" 2>/dev/null
	[ -n "$reply" ]
}
# qmp_ok DIR JSON WHAT: the command must return without error.
qmp_ok() {
	local r
	r=$(qmp "$1" "$2")
	echo "$r" >>"$1/qmp.log"
	case $r in *'"return"'*) return 0 ;; esac
	fail "$3: $2 -> ${r:-no reply}"
	return 1
}
hmp() { qmp "$1" "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"$2\"}}"; }

# event_log DIR: every QMP event of that QEMU, appended to DIR/events.log until it exits.
event_log() {
	socat "UNIX-CONNECT:$1/ev.sock" EXEC:"$here/qmp-listen.sh $1/events.log" 2>/dev/null &
	vm_track_pid $! 2>/dev/null
}

status_of() { qmp "$1" '{"execute":"query-status"}' | sed -n 's/.*"status": *"\([^"]*\)".*/\1/p'; }
serial_has() { grep -aq "$2" "$1/serial.log" 2>/dev/null; }
memcheck_line() { grep -a 'MEMCHECK pass=' "$1/serial.log" 2>/dev/null | tail -n 1 | tr -d '\r'; }
field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1"; }

# bail_out: what each side's trace ends with, where the threads of a live QEMU are (a hang
# shows here: gdb, when the host has it), and the end of the run.
bail_out() {
	local d pid
	say "primary trace: $(grep -v 'colo_compare\|old_packet\|rewriter' "$A/trace.log" | tail -n 8 | tr '\n' '|')"
	say "secondary trace: $(grep -v 'colo_compare\|old_packet\|rewriter\|vmstate_load\|loadvm_state' "$B/trace.log" | tail -n 8 | tr '\n' '|')"
	grep -q 'vmstate_load_state' "$B/trace.log" &&
		say "secondary's last device states loaded: $(grep 'vmstate_load_state\|loadvm_state_section' "$B/trace.log" | tail -n 6 | tr '\n' '|')"
	for d in "$A" "$B"; do
		pid=$(cat "$d/qemu.pid" 2>/dev/null)
		if [ -n "$pid" ] && [ -e "/proc/$pid" ] && command -v gdb >/dev/null; then
			say "$d: QMP query-status: $(QMP_T=5 status_of "$d" 2>/dev/null || true)"
			timeout 60 gdb -q -batch -p "$pid" -ex 'thread apply all bt 12' >"$d/stacks.txt" 2>&1
			say "$d threads: $(grep -E '^#[0-9]+ ' "$d/stacks.txt" | grep -oE ' in [a-z_0-9]+' | sort | uniq -c | sort -rn | head -n 12 | tr -s ' \n' ' ')"
		else
			say "$d: QEMU $pid is gone"
		fi
	done
	classify_secondary
	result failures "$failures"
	exit 1
}
# ---------------------------------------------------------------- primary (A)
A=$W/a B=$W/b
# COLO_CHANNEL=unix: every channel between A and B (the two filter chardevs, the NBD export,
# the migration stream) is a unix socket in the run's directory instead of TCP over the veth:
# what a tool that carries COLO's channels itself (through its agent) would hand QEMU.
if [ "${COLO_CHANNEL:-tcp}" = unix ]; then
	ch_mirror_srv="path=$W/mirror.sock" ch_compare_srv="path=$W/compare1.sock"
	ch_mirror_cli="path=$W/mirror.sock" ch_compare_cli="path=$W/compare1.sock"
	nbd_addr="{\"type\":\"unix\",\"data\":{\"path\":\"$W/nbd.sock\"}}" nbd_client="file.path=$W/nbd.sock"
	mig_in="unix:$W/mig.sock" mig_out="unix:$W/mig.sock"
	primary_listens() { [ -S "$W/compare1.sock" ]; }
elif [ "${COLO_CHANNEL:-tcp}" = relay ]; then
	# COLO_CHANNEL=relay: each QEMU talks to unix sockets on its own host only, and a relay
	# process per channel and host (socat) carries the bytes over one TCP connection across
	# the veth: the shape of an agent that relays COLO's channels through its own
	# authenticated connection, as it relays the migration stream for --remote. Mirror and
	# compare: B's client -> B's relay -> A's relay -> A's server; NBD and migration the other way.
	ch_mirror_srv="path=$A/mirror.sock" ch_compare_srv="path=$A/compare1.sock"
	ch_mirror_cli="path=$B/mirror.sock" ch_compare_cli="path=$B/compare1.sock"
	nbd_addr="{\"type\":\"unix\",\"data\":{\"path\":\"$B/nbd.sock\"}}" nbd_client="file.path=$A/nbd.sock"
	mig_in="unix:$B/mig.sock" mig_out="unix:$A/mig.sock"
	primary_listens() { [ -S "$A/compare1.sock" ]; }
	# relay NS_FROM SOCK NS_TO IP PORT TARGET: SOCK in NS_FROM is relayed to TARGET in NS_TO.
	relay() {
		ip netns exec "$3" socat "TCP-LISTEN:$5,bind=$4,reuseaddr,fork" "UNIX-CONNECT:$6" 2>>"$W/relay.err" &
		vm_track_pid $!
		ip netns exec "$1" socat "UNIX-LISTEN:$2,fork,unlink-early" "TCP:$4:$5" 2>>"$W/relay.err" &
		vm_track_pid $!
	}
	# COLO_RELAY_ONLY=migration: only the migration stream goes through the relays; the
	# filters' and NBD's sockets are shared directly (both "hosts" see the same files), to
	# tell which channel a failure comes from. COLO_RELAY_ONLY=others: all but the migration.
	if [ "${COLO_RELAY_ONLY:-}" = others ]; then
		mig_out="unix:$B/mig.sock"
	fi
	if [ "${COLO_RELAY_ONLY:-}" = migration ]; then
		ch_mirror_cli="path=$A/mirror.sock" ch_compare_cli="path=$A/compare1.sock" nbd_client="file.path=$B/nbd.sock"
	else
		relay "$NSB" "$B/mirror.sock" "$NSA" "$A_IP" 19003 "$A/mirror.sock"
		relay "$NSB" "$B/compare1.sock" "$NSA" "$A_IP" 19004 "$A/compare1.sock"
		relay "$NSA" "$A/nbd.sock" "$NSB" "$B_IP" 19999 "$B/nbd.sock"
	fi
	[ "${COLO_RELAY_ONLY:-}" = others ] || relay "$NSA" "$A/mig.sock" "$NSB" "$B_IP" 19998 "$B/mig.sock"
elif [ "${COLO_CHANNEL:-tcp}" = fd ]; then
	# COLO_CHANNEL=fd: the filters and NBD on direct TCP as by default, the migration on one
	# TCP connection made outside QEMU (tests/colo-probe/qmp-getfd.py accepts it in B and
	# connects it from A) and handed to each QEMU with getfd: B waits with -incoming defer and
	# gets migrate-incoming fd:mig, A migrates to fd:mig. What an agent that makes the
	# connection itself would do.
	ch_mirror_srv="host=0.0.0.0,port=9003" ch_compare_srv="host=0.0.0.0,port=9004"
	ch_mirror_cli="host=$A_IP,port=9003" ch_compare_cli="host=$A_IP,port=9004"
	nbd_addr='{"type":"inet","data":{"host":"0.0.0.0","port":"9999"}}' nbd_client="file.host=$B_IP,file.port=9999"
	mig_in="defer" mig_out="fd:mig"
	primary_listens() { ip netns exec "$NSA" ss -ltn | grep -q ':9004 '; }
else
	ch_mirror_srv="host=0.0.0.0,port=9003" ch_compare_srv="host=0.0.0.0,port=9004"
	ch_mirror_cli="host=$A_IP,port=9003" ch_compare_cli="host=$A_IP,port=9004"
	nbd_addr='{"type":"inet","data":{"host":"0.0.0.0","port":"9999"}}' nbd_client="file.host=$B_IP,file.port=9999"
	mig_in="tcp:0.0.0.0:9998" mig_out="tcp:$B_IP:9998"
	primary_listens() { ip netns exec "$NSA" ss -ltn | grep -q ':9004 '; }
fi
result channels "${COLO_CHANNEL:-tcp}"
[ "${COLO_CHANNEL:-tcp}" = tcp ] || [ "${COLO_RUNTIME:-0}" != 1 ] ||
	{ echo "colo-pair.sh: COLO_RUNTIME=1 adds TCP chardevs only; not with COLO_CHANNEL=unix" >&2; exit 2; }
pri_args=(
	-chardev "socket,id=mirror0,$ch_mirror_srv,server=on,wait=off"
	-chardev "socket,id=compare1,$ch_compare_srv,server=on,wait=on"
	-chardev "socket,id=compare0,host=127.0.0.1,port=9001,server=on,wait=off"
	-chardev "socket,id=compare0-0,host=127.0.0.1,port=9001"
	-chardev "socket,id=compare_out,host=127.0.0.1,port=9005,server=on,wait=off"
	-chardev "socket,id=compare_out0,host=127.0.0.1,port=9005"
	-object "filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0"
	-object "filter-redirector,netdev=hn0,id=redire0,queue=rx,indev=compare_out"
	-object "filter-redirector,netdev=hn0,id=redire1,queue=rx,outdev=compare0"
	-object "iothread,id=iothread1"
	-object "colo-compare,id=comp0,primary_in=compare0-0,secondary_in=compare1,outdev=compare_out0,iothread=iothread1"
	-drive "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename=$A/primary.qcow2,children.0.driver=qcow2")
[ "$MIN" = 1 ] && pri_args=()
# COLO_RUNTIME=1: the primary starts as a VM would today, with only its NIC and the quorum
# drive; the chardevs, filters and colo-compare are added by QMP once its guest runs (as
# qemu-colo.rst's "Primary resume replication" does), and the secondary is started after.
RUNTIME=${COLO_RUNTIME:-0}
[ "$RUNTIME" = 1 ] && pri_args=("${pri_args[@]: -2}")
# COLO_PLAIN=1: no filters on the primary (nothing would answer colo-compare), only its disk.
PLAIN=${COLO_PLAIN:-0}
[ "$PLAIN" = 1 ] && pri_args=("${pri_args[@]: -2}")
[ "$LIVE" = 1 ] || pri_args+=(-S)
start_qemu "$NSA" "$A" "${ram_a[@]}" "${pri_args[@]}"

sec_args=(
	-chardev "socket,id=red0,$ch_mirror_cli,$reconnect"
	-chardev "socket,id=red1,$ch_compare_cli,$reconnect"
	-object "filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0"
	-object "filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1"
	-object "filter-rewriter,id=rew0,netdev=hn0,queue=all"
	-drive "if=none,id=parent0,file.filename=$B/primary.qcow2,driver=qcow2"
	-drive "if=none,id=childs0,driver=replication,mode=secondary,file.driver=qcow2,top-id=colo-disk0,file.file.filename=$B/secondary-active.qcow2,file.backing.driver=qcow2,file.backing.file.filename=$B/secondary-hidden.qcow2,file.backing.backing=parent0"
	-drive "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=childs0"
	-incoming "$mig_in")
[ "$MIN" = 1 ] && sec_args=(-incoming "$mig_in")
[ "$PLAIN" = 1 ] && sec_args=(
	-drive "if=ide,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.file.filename=$B/primary.qcow2,children.0.driver=qcow2"
	-incoming "$mig_in")
# start_secondary: B's QEMU, once the primary listens for it (its chardevs retry anyway).
start_secondary() {
	[ "$MIN" = 1 ] || [ "$PLAIN" = 1 ] || wait_for 30 "the primary to listen for compare1" primary_listens ||
		{ cat "$A/qemu.err"; fail "primary does not listen for the secondary"; exit 1; }
	start_qemu "$NSB" "$B" "${ram_b[@]}" "${sec_args[@]}"
	wait_for 60 "B's pidfile" sh -c "[ -s '$B/qemu.pid' ]" || {
		say "secondary stderr: $(cat "$B/qemu.err")"; fail "the secondary did not start"; exit 1; }
	PB=$(cat "$B/qemu.pid")
	vm_track_pid "$PB"
	event_log "$B"
	[ "$MIN" = 1 ] || { ip -n "$NSB" addr add "$HOST_IP/24" dev ctap0 && ip -n "$NSB" link set ctap0 up; }
	say "secondary PID $PB in $NSB (command line: $B/cmdline)"
	# COLO_GDB=1: gdb waits on the secondary and prints every thread's stack if it aborts
	# (Debian's binaries carry enough symbols for function names).
	if [ "${COLO_GDB:-0}" = 1 ]; then
		gdb -q -batch -p "$PB" -ex 'handle all nostop noprint pass' -ex 'handle SIGABRT SIGSEGV stop print nopass' \
			-ex continue -ex 'bt 40' -ex 'thread apply all bt 8' >"$B/gdb.txt" 2>&1 &
		vm_track_pid $! 2>/dev/null
		wait_for 30 "gdb to attach to the secondary" grep -q "^Continuing" "$B/gdb.txt" || true
	fi
}
[ "$RUNTIME" = 1 ] || start_secondary
wait_for 60 "A's pidfile" sh -c "[ -s '$A/qemu.pid' ]" || {
	say "primary stderr: $(cat "$A/qemu.err")"; fail "the primary did not start"; exit 1; }
PA=$(cat "$A/qemu.pid")
vm_track_pid "$PA"
say "primary PID $PA in $NSA (command line: $A/cmdline)"
event_log "$A"
[ "$MIN" = 1 ] || { ip -n "$NSA" addr add "$HOST_IP/24" dev ctap0 && ip -n "$NSA" link set ctap0 up; }

# ---------------------------------------------------------------- guest up (live primary)
if [ "$LIVE" = 1 ]; then
	if wait_for 120 "MEMCHECK READY on the primary" serial_has "$A" 'MEMCHECK READY'; then
		result primary_booted yes
		if [ "$MIN" != 1 ]; then
			ip netns exec "$NSA" ping -c 3 -W 2 "$GUEST_IP" >"$W/ping-before" 2>&1
			result ping_before_colo "$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$W/ping-before")/3"
		fi
	else
		fail "the primary's guest did not boot: $(tail -n 3 "$A/serial.log")"
	fi
fi
if [ "$RUNTIME" = 1 ]; then
	# chardev-add: a socket chardev, server (listening) or client; then the filters.
	chardev() {
		qmp_ok "$A" "{\"execute\":\"chardev-add\",\"arguments\":{\"id\":\"$1\",\"backend\":{\"type\":\"socket\",\"data\":{\"addr\":{\"type\":\"inet\",\"data\":{\"host\":\"$2\",\"port\":\"$3\"}},\"server\":$4}}}}" "chardev-add $1"
	}
	objadd() { qmp_ok "$A" "{\"execute\":\"object-add\",\"arguments\":$1}" "object-add $1"; }
	chardev mirror0 0.0.0.0 9003 true && chardev compare1 0.0.0.0 9004 true &&
		chardev compare0 127.0.0.1 9001 true && chardev compare0-0 127.0.0.1 9001 false &&
		chardev compare_out 127.0.0.1 9005 true && chardev compare_out0 127.0.0.1 9005 false &&
		objadd '{"qom-type":"filter-mirror","id":"m0","netdev":"hn0","queue":"tx","outdev":"mirror0"}' &&
		objadd '{"qom-type":"filter-redirector","id":"redire0","netdev":"hn0","queue":"rx","indev":"compare_out"}' &&
		objadd '{"qom-type":"filter-redirector","id":"redire1","netdev":"hn0","queue":"rx","outdev":"compare0"}' &&
		objadd '{"qom-type":"iothread","id":"iothread1"}' &&
		objadd '{"qom-type":"colo-compare","id":"comp0","primary_in":"compare0-0","secondary_in":"compare1","outdev":"compare_out0","iothread":"iothread1"}' &&
		result filters_added_at_runtime yes || { result filters_added_at_runtime no; bail_out; }
	start_secondary
fi
result pair_started yes

# ---------------------------------------------------------------- enter COLO
# set_caps DIR CAPS: migrate-set-capabilities with CAPS (JSON objects), plus return-path when
# this QEMU says x-colo needs it (11.x: "Capability 'x-colo' requires capability 'return-path'").
set_caps() {
	local r caps=$2
	r=$(qmp "$1" "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":[$caps]}}")
	case $r in *"requires capability 'return-path'"*)
		say "$1: $r; adding return-path"
		result needs_return_path yes
		caps="$caps,{\"capability\":\"return-path\",\"state\":true}"
		r=$(qmp "$1" "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":[$caps]}}") ;;
	esac
	case $r in *'"return"'*) return 0 ;; esac
	fail "migrate-set-capabilities $caps on $1: ${r:-no reply}"
	return 1
}
# fd_channel: COLO_CHANNEL=fd: the migration connection made outside QEMU, handed to both.
fd_channel() {
	[ "${COLO_CHANNEL:-tcp}" = fd ] || return 0
	ip netns exec "$NSB" python3 "$here/qmp-getfd.py" "$B/qmp.sock" mig listen "$B_IP" 19998 fd:mig >"$W/getfd-b.log" 2>&1 &
	getfd_b=$!
	wait_for 30 "B's helper to listen" grep -q listening "$W/getfd-b.log" || fail "B's getfd helper: $(cat "$W/getfd-b.log")"
	ip netns exec "$NSA" python3 "$here/qmp-getfd.py" "$A/qmp.sock" mig connect "$B_IP" 19998 >"$W/getfd-a.log" 2>&1 ||
		fail "A's getfd helper: $(cat "$W/getfd-a.log")"
	wait "$getfd_b" || fail "B's getfd helper: $(cat "$W/getfd-b.log")"
	say "getfd: A: $(tr '\n' ' ' <"$W/getfd-a.log") B: $(tr '\n' ' ' <"$W/getfd-b.log")"
}

# COLO_STOP: whether the primary's guest runs while the initial copy (a live precopy) is made.
# live: it runs (QEMU's default, qemu-colo.rst); before: QMP stop before `migrate`, so the
# copy is of a still guest; syncN: stop once the precopy has made its first full pass and N-1
# dirty rounds (the moment the copy would converge anyway), so the guest is paused only for
# the last rounds. Both resume when COLO is entered (QEMU's COLO thread starts the VM itself;
# `cont` if it did not).
STOP=${COLO_STOP:-live}
case $STOP in live | before | sync[0-9]*) ;; *) echo "colo-pair.sh: COLO_STOP=$STOP: live, before or syncN" >&2; exit 2 ;; esac
result stop_mode "$STOP"
stop_before_migrate() {
	[ "$STOP" = before ] || return 0
	qmp_ok "$A" '{"execute":"stop"}' "primary stop before migrate" && result stop_at before_migrate
}
stop_at_sync() {
	local r rc
	case $STOP in sync[0-9]*) ;; *) return 0 ;; esac
	r=$(python3 "$here/qmp-stop-at-sync.py" "$A/qmp.sock" "${STOP#sync}" 2>&1)
	rc=$?
	say "stop at dirty sync ${STOP#sync}: $r"
	case $rc in
	0) result stop_at stopped
		result stop_dirty_sync_count "$(field "$r" dirty-sync-count)"
		result stop_remaining_bytes "$(field "$r" remaining)"
		result stop_transferred_bytes "$(field "$r" transferred)" ;;
	3) result stop_at too_late ;;
	*) result stop_at error; fail "stop at sync: $r" ;;
	esac
}
# first_pause_ms STOP_LOG RESUME_LOG: ms from the first STOP event in STOP_LOG to the first
# RESUME in RESUME_LOG after it (QEMU's own timestamps; both QEMUs share this host's clock).
# On the primary of a COLO pair that is the initial copy's pause, whatever COLO_STOP says.
ev_times() {
	jq -r --arg e "$2" 'select(.event == $e) |
		"\(.timestamp.seconds).\(.timestamp.microseconds | tostring | ("000000" + .)[-6:]) \(.event)"' "$1" 2>/dev/null
}
first_pause_ms() {
	{ ev_times "$1" STOP; ev_times "$2" RESUME; } | sort -n |
		awk '$2 == "STOP" && !t { t = $1 } $2 == "RESUME" && t { printf "%.1f\n", ($1 - t) * 1000; exit }'
}
# classify_secondary: what became of the secondary's guest, from its serial console: clean,
# corrupt (memcheck found wrong words) or crashed (its kernel or memcheck died), with the
# largest error count memcheck printed and that count as a share of the words one pass checks
# (memcheck's count is a running total over its passes: the share can exceed 100).
classify_secondary() {
	local n errs crash words
	n=$(grep -ac 'MEMCHECK CORRUPT' "$B/serial.log" 2>/dev/null)
	errs=$(grep -ao 'MEMCHECK pass=[0-9]* errors=[0-9]*' "$B/serial.log" 2>/dev/null | sed 's/.*errors=//' | sort -n | tail -n 1)
	crash=$(grep -aE 'Kernel panic|Power down|MEMCHECK EXITED|general protection|BUG:|Oops' "$B/serial.log" 2>/dev/null | head -n 1 | tr -d '\r')
	words=$((${VM_MEMCHECK_MIB:-32} * 1024 * 1024 / 8))
	result secondary_corrupt_lines "${n:-0}"
	result secondary_memcheck_max_errors "${errs:-0}"
	result secondary_memcheck_max_errors_pct "$(echo "scale=1; ${errs:-0} * 100 / $words" | bc)"
	if [ -n "$crash" ]; then
		result secondary_guest crashed
		say "secondary's guest: $crash"
	elif [ "${n:-0}" -gt 0 ] || [ "${errs:-0}" -gt 0 ]; then
		result secondary_guest corrupt
	else
		result secondary_guest clean
	fi
	[ "${n:-0}" -gt 0 ] && say "secondary's first corrupt line: $(grep -a -m1 'MEMCHECK CORRUPT' "$B/serial.log" | tr -d '\r')"
	return 0
}

# ---------------------------------------------------------------- COLO_PLAIN=1
# A plain precopy migration over the same channel (relayed or not), return-path on as COLO
# needs it, to a secondary started with only -incoming; then the destination's checker must
# run a full pass clean. Tells COLO's corruption from the migration stream's.
# start_migration: the channel, the stop the run asks for (COLO_STOP), and migrate; the time
# it started in t_migrate.
start_migration() {
	fd_channel
	stop_before_migrate
	t_migrate=$(date +%s.%N)
	qmp_ok "$A" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"$mig_out\"}}" "primary migrate"
	stop_at_sync
}
if [ "$PLAIN" = 1 ]; then
	set_caps "$B" '{"capability":"return-path","state":true}' || exit 1
	set_caps "$A" '{"capability":"return-path","state":true},{"capability":"events","state":true}' || exit 1
	qmp_ok "$A" '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":1073741824}}' "primary max-bandwidth"
	start_migration
	mig_status() { qmp "$A" '{"execute":"query-migrate"}' | sed -n 's/.*"status": *"\([^"]*\)".*/\1/p'; }
	mig_done() { case $(mig_status) in completed | failed | cancelled) return 0 ;; esac; return 1; }
	wait_for 120 "the migration to end" mig_done
	st=$(mig_status)
	result plain_migration "$st"
	result plain_migration_s "$(echo "$(date +%s.%N) - $t_migrate" | bc)"
	say "primary query-migrate: $(qmp "$A" '{"execute":"query-migrate"}')"
	[ "$st" = completed ] || { fail "plain migration: $st"; say "stderr A: $(tail -n 5 "$A/qemu.err")"; bail_out; }
	# A stopped source hands over a paused guest: the destination then needs `cont`.
	b_settled() { case $(status_of "$B") in running | paused) return 0 ;; esac; return 1; }
	wait_for 30 "the destination to leave inmigrate" b_settled
	result destination_status_after_migration "$(status_of "$B")"
	[ "$(status_of "$B")" = running ] || qmp_ok "$B" '{"execute":"cont"}' "destination cont"
	result initial_pause_ms "$(first_pause_ms "$A/events.log" "$B/events.log")"
	kill -KILL "$PA"
	p0=$(field "$(memcheck_line "$B")" pass)
	# Two more passes: one whole pass of the checker read memory the destination loaded.
	b_progress2() { local p; p=$(field "$(memcheck_line "$B")" pass); [ "${p:-0}" -ge $((${p0:-0} + 2)) ]; }
	if wait_for 90 "two memcheck passes on the destination" b_progress2; then
		l=$(memcheck_line "$B")
		result destination_memcheck "$l"
		[ "$(field "$l" errors)" = 0 ] || fail "memcheck errors on the destination: $l"
	else
		fail "the destination's memcheck does not progress: $(tail -n 3 "$B/serial.log" | tr -d '\r' | tr '\n' '|')"
	fi
	classify_secondary
	say "logs in $W"
	result failures "$failures"
	[ "$failures" = 0 ]
	exit
fi

set_caps "$B" '{"capability":"x-colo","state":true}' || exit 1
if [ "$MIN" != 1 ]; then
qmp_ok "$B" "{\"execute\":\"nbd-server-start\",\"arguments\":{\"addr\":$nbd_addr}}" "secondary nbd-server-start"
qmp_ok "$B" '{"execute":"nbd-server-add","arguments":{"device":"parent0","writable":true}}' "secondary nbd-server-add"
r=$(hmp "$A" "drive_add -n buddy driver=replication,mode=primary,file.driver=nbd,$nbd_client,file.export=parent0,node-name=replication0")
say "primary drive_add: $r"
case $r in *'"return": ""'* | *'"return":""'*) ;; *) fail "primary drive_add replication: $r" ;; esac
qmp_ok "$A" '{"execute":"x-blockdev-change","arguments":{"parent":"colo-disk0","node":"replication0"}}' "primary x-blockdev-change"
fi
set_caps "$A" '{"capability":"x-colo","state":true},{"capability":"events","state":true}' || exit 1
qmp_ok "$A" "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"x-checkpoint-delay\":$DELAY,\"max-bandwidth\":1073741824}}" "primary x-checkpoint-delay"
start_migration

colo_mode() { qmp "$1" '{"execute":"query-colo-status"}' | sed -n 's/.*"mode": *"\([^"]*\)".*/\1/p'; }
in_colo() { [ "$(colo_mode "$A")" = primary ] && [ "$(colo_mode "$B")" = secondary ]; }
# Stop waiting early when the secondary dies (the failure is then in its trace).
colo_or_dead() { in_colo || ! [ -e "/proc/$PB" ]; }
if wait_for 120 "query-colo-status primary/secondary" colo_or_dead && in_colo; then
	t_colo=$(date +%s.%N)
	result colo_entered yes
	result colo_entry_s "$(echo "$t_colo - $t_migrate" | bc)"
	say "primary: $(qmp "$A" '{"execute":"query-colo-status"}')"
	say "secondary: $(qmp "$B" '{"execute":"query-colo-status"}')"
	# A primary stopped for the initial copy: running again once COLO is entered?
	if [ "$STOP" != live ]; then
		st=$(status_of "$A")
		result primary_status_in_colo "$st"
		[ "$st" = running ] || [ "$st" = colo ] || qmp_ok "$A" '{"execute":"cont"}' "primary cont after COLO entry"
	fi
else
	result colo_entered no
	# The poll can miss a short COLO state (the secondary dying at its first checkpoint): A's
	# trace says whether its migration reached the colo state.
	grep -q 'migrate_set_state new state colo' "$A/trace.log" &&
		result primary_trace_reached_colo yes || result primary_trace_reached_colo no
	say "primary query-colo-status: $(qmp "$A" '{"execute":"query-colo-status"}')"
	say "primary query-migrate: $(qmp "$A" '{"execute":"query-migrate"}')"
	say "secondary query-colo-status: $(qmp "$B" '{"execute":"query-colo-status"}')"
	say "primary stderr: $(tail -n 5 "$A/qemu.err")"
	say "secondary stderr: $(tail -n 5 "$B/qemu.err")"
	fail "COLO state not reached"
	bail_out
fi
say "primary status $(status_of "$A"), secondary status $(status_of "$B")"
result initial_pause_ms "$(first_pause_ms "$A/events.log" "$A/events.log")"

# ---------------------------------------------------------------- protected period
if [ "$LIVE" != 1 ]; then
	wait_for 180 "MEMCHECK READY on the primary (booting under COLO)" serial_has "$A" 'MEMCHECK READY' &&
		result primary_booted yes || fail "guest did not boot under COLO: $(tail -n 3 "$A/serial.log")"
fi
if [ "$MIN" = 1 ]; then
	# No network: the protected period is timed by checkpoints instead of pings.
	n_end=$(( $(grep -c "Send 'checkpoint-request'" "$A/trace.log") + PROTECT_S * 1000 / DELAY ))
	enough() { [ "$(grep -c "Send 'checkpoint-request'" "$A/trace.log")" -ge "$n_end" ] || ! [ -e "/proc/$PB" ] ||
		grep -q 'SIGABRT' "$B/gdb.txt" 2>/dev/null; }
	wait_for $((PROTECT_S * 3 + 30)) "$((PROTECT_S * 1000 / DELAY)) more checkpoints" enough
else
ip netns exec "$NSA" ping -i 0.2 -w "$PROTECT_S" -W 1 "$GUEST_IP" >"$W/ping-colo" 2>&1
sed -n '/packets transmitted/,$p' "$W/ping-colo" | sed 's/^/# ping from A during COLO: /'
result ping_during_colo "$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2\/\1/p' "$W/ping-colo")"
result ping_during_colo_rtt_ms "$(sed -n 's/.*= \([0-9.]*\/[0-9.]*\/[0-9.]*\)\/.*/\1/p' "$W/ping-colo")"
fi
# secondary_dead: B's QEMU is gone, or stopped by gdb at its abort.
secondary_dead() { ! [ -e "/proc/$PB" ] || grep -q 'SIGABRT' "$B/gdb.txt" 2>/dev/null; }
if secondary_dead; then
	result secondary_died_during_protection yes
	[ -s "$B/gdb.txt" ] && say "secondary's stack at the abort: $(sed -n '/SIGABRT/,/^$/p' "$B/gdb.txt" | grep -oE '^#[0-9]+ .* in [a-zA-Z_0-9]+' | sed 's/.* in //' | head -n 25 | tr '\n' ' ')"
	fail "the secondary QEMU died while protecting"
	bail_out
fi
if [ "$MIN" != 1 ]; then
	# A disk write through the primary's quorum (both children: the local image and the NBD
	# replication node), to be read back on the secondary after failover.
	r=$(hmp "$A" 'qemu-io colo-disk0 \"write -P 0x5a 1M 64k\"')
	say "primary qemu-io write: $r"
	case $r in *error* | *rror*) fail "primary disk write: $r" ;; esac
fi
# Let one more checkpoint pass after the write (the secondary's view is the last checkpoint's).
wait_next_ckpt() {
	local n0 t=$((30 + DELAY / 1000)) end
	end=$((SECONDS + t))
	n0=$(grep -c "Send 'checkpoint-request'" "$A/trace.log")
	while [ "$(grep -c "Send 'checkpoint-request'" "$A/trace.log")" -le $((n0 + 1)) ]; do
		[ $SECONDS -lt $end ] || { say "no further checkpoint within $t s"; return 1; }
		sleep 0.1
	done
}
wait_next_ckpt
say "primary query-migrate: $(qmp "$A" '{"execute":"query-migrate"}')"
# Host memory of each side while protecting (qemu-colo.rst: the secondary keeps a second copy
# of guest RAM, its RAM cache).
rss_mib() { local k; k=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null); echo $((${k:-0} / 1024)); }
result rss_primary_mib "$(rss_mib "$PA")"
result rss_secondary_mib "$(rss_mib "$PB")"
pri_mc=$(memcheck_line "$A")
sec_mc_before=$(memcheck_line "$B")
say "primary memcheck before the kill: $pri_mc"
say "secondary memcheck before the kill: ${sec_mc_before:-none}"

# Checkpoints and pauses, from the primary's trace: one 'checkpoint-request' per checkpoint;
# the guest's pause is each vm_state_notify running 0 -> running 1 after COLO started.
tsec() { sed -E -n 's/^[0-9]+@([0-9]+\.[0-9]+):.*/\1/p; s/^[0-9-]+T([0-9]+):([0-9]+):([0-9.]+)Z .*/\1 \2 \3/p' |
	awk 'NF==3 { printf "%.6f\n", $1*3600+$2*60+$3; next } { print }'; }
ckpts=$(grep -c "Send 'checkpoint-request'" "$A/trace.log")
result checkpoints "$ckpts"
# The pauses: pairs (stop, start) after the first 'checkpoint-request'.
awk '/checkpoint-request/ && !seen { seen=1 } seen && /vm_state_notify running [01]/' "$A/trace.log" >"$W/pauses.raw"
paste <(tsec <"$W/pauses.raw") <(sed -n 's/.*vm_state_notify running \([01]\).*/\1/p' "$W/pauses.raw") |
	awk '$2==0 { t=$1 } $2==1 && t { printf "%.1f\n", ($1-t)*1000; t=0 }' | sort -n >"$W/pauses.ms"
if [ -s "$W/pauses.ms" ]; then
	n=$(wc -l <"$W/pauses.ms")
	result pauses "$n"
	result pause_ms_min "$(head -n 1 "$W/pauses.ms")"
	result pause_ms_median "$(sed -n "$(((n + 1) / 2))p" "$W/pauses.ms")"
	result pause_ms_max "$(tail -n 1 "$W/pauses.ms")"
fi
# The same pauses from QMP alone (what a tool can see without tracing): STOP -> RESUME event
# pairs on A's monitor, each stamped by QEMU in microseconds.
jq -r 'select(.event == "STOP" or .event == "RESUME") |
	"\(.timestamp.seconds).\(.timestamp.microseconds | tostring | ("000000" + .)[-6:]) \(.event)"' \
	"$A/events.log" 2>/dev/null | awk '$2 == "STOP" { t = $1 } $2 == "RESUME" && t { printf "%.1f\n", ($1 - t) * 1000; t = 0 }' |
	sort -n >"$W/pauses-events.ms"
if [ -s "$W/pauses-events.ms" ]; then
	n=$(wc -l <"$W/pauses-events.ms")
	result event_pauses "$n"
	result event_pause_ms_median "$(sed -n "$(((n + 1) / 2))p" "$W/pauses-events.ms")"
fi
# Checkpoint intervals (request to request), to compare with x-checkpoint-delay.
grep "Send 'checkpoint-request'" "$A/trace.log" | tsec | awk 'p { printf "%.0f\n", ($1-p)*1000 } { p=$1 }' | sort -n >"$W/intervals.ms"
[ -s "$W/intervals.ms" ] && result interval_ms_median "$(sed -n "$((($(wc -l <"$W/intervals.ms") + 1) / 2))p" "$W/intervals.ms")"
result miscompares "$(grep -c 'miscompare' "$A/trace.log")"
# What each checkpoint carries: the secondary's count of dirty pages it flushes from its RAM
# cache into the guest's RAM (4 KiB each), and the device state's size.
sed -n 's/.*colo_flush_ram_cache_begin dirty_pages \([0-9]*\).*/\1/p' "$B/trace.log" | sort -n >"$W/dirty.pages"
if [ -s "$W/dirty.pages" ]; then
	n=$(wc -l <"$W/dirty.pages")
	result dirty_pages_median "$(sed -n "$(((n + 1) / 2))p" "$W/dirty.pages")"
	result dirty_pages_max "$(tail -n 1 "$W/dirty.pages")"
fi

# ---------------------------------------------------------------- failover to B
# COLO_FAULT=kill (default): SIGKILL the primary QEMU (its sockets close: B sees EOF/RST).
# COLO_FAULT=cut: A's end of the veth goes down (no FIN, no RST: what a dead host looks like).
t_kill=$(date +%s.%N)
if [ "${COLO_FAULT:-kill}" = cut ]; then
	ip -n "$NSA" link set "cva$$" down
	say "veth cut on A; the primary goes on by itself"
else
	kill -KILL "$PA"
	pa_gone() { [ ! -e "/proc/$PA" ] || grep -q '^State:.*Z' "/proc/$PA/status" 2>/dev/null; }
	wait_for 10 "the primary to die" pa_gone
fi
# What B does on its own before it is told: mode and the COLO_EXIT events so far.
say "secondary before any command: $(qmp "$B" '{"execute":"query-colo-status"}'), status $(status_of "$B")"
result secondary_colo_exit_by_itself "$(grep -c '"COLO_EXIT"' "$B/events.log")"
[ "$MIN" = 1 ] || qmp_ok "$B" '{"execute":"nbd-server-stop"}' "secondary nbd-server-stop"
r=$(qmp "$B" '{"execute":"x-colo-lost-heartbeat"}')
say "secondary x-colo-lost-heartbeat: $r"
result lost_heartbeat_reply "$(tr ' ' '_' <<<"$r")"
b_running() { [ "$(status_of "$B")" = running ]; }
if wait_for 30 "the secondary to run" b_running; then
	t_run=$(date +%s.%N)
	result failover_running yes
	result failover_kill_to_running_s "$(echo "$t_run - $t_kill" | bc)"
else
	result failover_running no
	fail "secondary not running after x-colo-lost-heartbeat: $(status_of "$B"), $(tail -n 3 "$B/qemu.err")"
fi
say "secondary after failover: $(qmp "$B" '{"execute":"query-colo-status"}')"
# Ping from B's host before the secondary's redirectors go (they still send the guest's
# output towards the dead primary), then after (qemu-colo.rst's "Secondary Failover").
if [ "$MIN" != 1 ]; then
ip netns exec "$NSB" ping -c 5 -i 0.2 -W 1 "$GUEST_IP" >"$W/ping-b1" 2>&1
result ping_b_with_redirectors "$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2\/\1/p' "$W/ping-b1")"
qmp_ok "$B" '{"execute":"object-del","arguments":{"id":"f2"}}' "secondary object-del f2"
qmp_ok "$B" '{"execute":"object-del","arguments":{"id":"f1"}}' "secondary object-del f1"
ip netns exec "$NSB" ping -c 10 -i 0.2 -W 1 "$GUEST_IP" >"$W/ping-b2" 2>&1
result ping_b_after_object_del "$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2\/\1/p' "$W/ping-b2")"
# HMP's qemu-io prints to QEMU's stdout, not to the monitor: the write is checked in the
# image files. A's image (its QEMU is dead) must hold it; B's parent image gets it when the
# failover commits B's active and hidden images into it (the replication driver's job):
# wait for that, with B's QEMU flushing first.
hmp "$B" 'qemu-io colo-disk0 flush' >/dev/null
img_has() { qemu-io -U -r -f qcow2 -c 'read -P 0x5a 1M 64k' "$1" 2>&1 | grep -q '^read 65536/65536'; }
img_has "$A/primary.qcow2" && result disk_write_on_primary_image yes ||
	{ result disk_write_on_primary_image no; fail "the primary's own image lacks the write"; }
if wait_for 30 "the primary's write in B's parent image" img_has "$B/primary.qcow2"; then
	result disk_write_on_secondary yes
else
	result disk_write_on_secondary no
	fail "the primary's disk write is not in B's image: $(qemu-io -U -r -f qcow2 -c 'read -P 0x5a 1M 64k' "$B/primary.qcow2" 2>&1 | head -n 2 | tr '\n' ' ')"
	say "B's block jobs: $(qmp "$B" '{"execute":"query-block-jobs"}')"
fi
fi
# The guest on B: its memory checker must go on, with no errors.
p0=$(field "$(memcheck_line "$B")" pass)
b_progress() { local p; p=$(field "$(memcheck_line "$B")" pass); [ "${p:-0}" -gt "${p0:-0}" ]; }
if wait_for 60 "memcheck progress on the secondary" b_progress; then
	l=$(memcheck_line "$B")
	say "secondary memcheck after failover: $l"
	result secondary_memcheck "$l"
	[ "$(field "$l" errors)" = 0 ] && result secondary_memcheck_clean yes ||
		{ result secondary_memcheck_clean no; fail "memcheck errors on the secondary: $l"; grep -a CORRUPT "$B/serial.log" | head -n 3 | sed 's/^/# /'; }
	result primary_pass_at_kill "$(field "$pri_mc" pass)"
	result secondary_pass_after "$(field "$l" pass)"
else
	result secondary_memcheck_clean no
	fail "the secondary's memcheck does not progress: $(tail -n 3 "$B/serial.log")"
fi
# After a cut, A's QEMU still lives: does its guest still run (two copies of the guest)?
if [ "${COLO_FAULT:-kill}" = cut ]; then
	say "primary after the cut: $(qmp "$A" '{"execute":"query-colo-status"}'), status $(status_of "$A")"
	result primary_status_after_cut "$(status_of "$A")"
	pa0=$(field "$(memcheck_line "$A")" pass)
	a_progress() { local p; p=$(field "$(memcheck_line "$A")" pass); [ "${p:-0}" -gt "${pa0:-0}" ]; }
	if wait_for 20 "memcheck progress on the primary after the cut" a_progress; then
		result primary_guest_runs_after_cut yes
	else
		result primary_guest_runs_after_cut no
	fi
	# Does A's guest still reach its own host? colo-compare holds what has no match from B.
	ip netns exec "$NSA" ping -c 5 -i 0.2 -W 1 "$GUEST_IP" >"$W/ping-a-cut" 2>&1
	result ping_a_after_cut "$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2\/\1/p' "$W/ping-a-cut")"
	r=$(QMP_T=10 qmp "$A" '{"execute":"x-colo-lost-heartbeat"}')
	say "primary x-colo-lost-heartbeat: ${r:-no reply in 10 s}"
	result primary_lost_heartbeat_reply "$(tr ' ' '_' <<<"${r:-none}")"
	pa0=$(field "$(memcheck_line "$A")" pass)
	wait_for 20 "memcheck progress on the primary after its own failover" a_progress &&
		result primary_guest_runs_after_its_failover yes || result primary_guest_runs_after_its_failover no
	r=$(QMP_T=10 qmp "$A" '{"execute":"query-status"}')
	say "primary after its failover: query-status ${r:-no reply in 10 s}"
	if [ -z "$r" ] && command -v gdb >/dev/null; then
		timeout 60 gdb -q -batch -p "$PA" -ex 'thread apply all bt 12' >"$A/stacks.txt" 2>&1
		say "$A threads: $(grep -E '^#[0-9]+ ' "$A/stacks.txt" | grep -oE ' in [a-z_0-9]+' | sort | uniq -c | sort -rn | head -n 12 | tr -s ' \n' ' ')"
	fi
fi
say "events A: $(grep -o '"event": *"[A-Z_]*"' "$A/events.log" 2>/dev/null | sort | uniq -c | tr -s ' \n' ' ')"
say "events B: $(grep -o '"event": *"[A-Z_]*"' "$B/events.log" 2>/dev/null | sort | uniq -c | tr -s ' \n' ' ')"
grep -a COLO_EXIT "$B/events.log" | head -n 1 | sed 's/^/# B COLO_EXIT: /'
say "stderr A: $(tr '\n' '|' <"$A/qemu.err" | cut -c1-600)"
say "stderr B: $(tr '\n' '|' <"$B/qemu.err" | cut -c1-600)"
classify_secondary
say "logs in $W"
result failures "$failures"
[ "$failures" = 0 ]
