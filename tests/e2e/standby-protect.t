#!/usr/bin/env bash
# qemu-upgrade standby start / status / stop (issue 16) on two "hosts" (network namespaces
# joined by a veth, the TLS agent on B), real QEMU 11.1.3 (Debian sid) under TCG, the
# memory-checking guest (its RAM a shared memfd) with a virtio-net NIC on a tap (vhost=off,
# vnet_hdr=off) and no disk.
# The VM is protected: the secondary runs on B, checkpoints flow (standby status counts them
# and their pauses), the guest stays clean and keeps answering pings through colo-compare;
# `standby stop` leaves the primary running alone (no COLO, no filter, no capability, no key)
# and B without a QEMU. Protected again, its supervisor SIGKILLed: status says so, the agent
# stops the secondary, and --recover releases the primary. A second start of a protected VM
# is refused (a VM with a disk: standby-disk.t).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"
. "$here/../lib/standby.sh"

standby_qemu

tap_plan 18
standby_hosts
dest=(--remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A")

objects() { vm_qmp "$VM_QMP" '{"execute":"qom-list","arguments":{"path":"/objects"}}' | jq -c '[.return[].name] | sort'; }
chardevs() { vm_qmp "$VM_QMP" '{"execute":"query-chardev"}' | jq -c '[.return[].label] | sort'; }
caps_on() { vm_qmp "$VM_QMP" '{"execute":"query-migrate-capabilities"}' | jq -c '[.return[] | select(.state)] | map(.capability)'; }
colo_mode() { vm_qmp "$VM_QMP" '{"execute":"query-colo-status"}' | jq -r .return.mode; }
status_json() { standby status --pid "$VM_PID" --json && jq -r "$1" <<<"$OUT"; }
# ping_guest COUNT: pings from A's host side of the tap; prints "received/sent".
ping_guest() {
	ip netns exec "$REMOTE_NS_A" ping -c "$1" -i 0.2 -W 2 192.168.77.10 2>&1 | sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2\/\1/p'
}

# 1. A VM COLO protects, without a disk.
tapa=sbp$$
# The supervisor holds the monitor the tool finds (the first -qmp) while it protects: the test
# asks its questions on a second one.
mon=$(mktemp -d /tmp/qu-sbp-mon.XXXXXX) && _vm_paths+=("$mon")
QEMU=$Q11 VM_APPEND="net_ip=192.168.77.10/24" VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start standby-protect \
	-netdev "tap,id=hn0,ifname=$tapa,script=no,downscript=no,vhost=off,vnet_hdr=off" \
	-device virtio-net-pci,id=net0,netdev=hn0,mac=52:54:00:12:34:77 -qmp "unix:$mon/test.sock,server=on,wait=off" ||
	{ echo "Bail out! the 11.1 VM did not start"; exit 1; }
VM_QMP=$mon/test.sock
ip -n "$REMOTE_NS_A" addr add 192.168.77.1/24 dev "$tapa" && ip -n "$REMOTE_NS_A" link set "$tapa" up
# B has a tap of the same name, as the operator makes it there (the agent opens it).
ip -n "$REMOTE_NS_B" tuntap add dev "$tapa" mode tap && ip -n "$REMOTE_NS_B" addr add 192.168.77.1/24 dev "$tapa" &&
	ip -n "$REMOTE_NS_B" link set "$tapa" up || { echo "Bail out! cannot make the tap on B"; exit 1; }
vm_wait_ready || { echo "Bail out! the 11.1 guest did not come up"; exit 1; }
# The agent may make files in the VM's directory (a tmpfs there: the secondary's sockets and
# logs at the same paths as the primary's).
REMOTE_AGENT_BINARIES="$Q11" remote_agent_start "$VM_DIR" "$mon" || { echo "Bail out! the agent did not start"; exit 1; }
OBJECTS=$(objects) CHARDEVS=$(chardevs)
tap_diag "the test's monitor: $(vm_runstate)"
tap_diag "before: objects $OBJECTS, chardevs $CHARDEVS, pings $(ping_guest 3)"

tls_before=$(ls -d /run/qemu-upgrade-tls-* 2>/dev/null)
standby start --pid "$VM_PID" "${dest[@]}" --interval 500
rc=$?
tap_diag "start: exit $rc: $OUT"
tap_diag "stderr: $(tail -n 20 <<<"$ERR")"
[ "$rc" = 0 ] && grep -q "^protected: PID $VM_PID, secondary PID [0-9]* on $REMOTE_B_IP" <<<"$OUT"
tap_ok $? "standby start: protected (exit 0), the secondary on B named"
sec=$(remote_qemus)
# Its run state is "colo" while a checkpoint is taken: running in between.
primary_runs() { [ "$(vm_runstate)" = running ]; }
[ -n "$sec" ] && [ "$(colo_mode)" = primary ] && wait_for 60 "the primary to run between checkpoints" primary_runs
tap_ok $? "the primary is in COLO (mode primary) and running; B runs the secondary (PID ${sec:-none})"
# The primary's guest RAM is a shared memfd (the zero-copy layout); the secondary's is private
# (shared there too, its guest was corrupt at the first checkpoint: docs/standby-research.md).
seccmd=$(tr '\0' ' ' <"/proc/$sec/cmdline" 2>/dev/null)
tap_diag "the secondary's RAM: $(grep -o -- '-object memory-backend[^ ]*' <<<"$seccmd")"
grep -q -- "-object memory-backend-ram,id=mem0,size=256M" <<<"$seccmd" && ! grep -q -- "memory-backend-file\|memory-backend-memfd" <<<"$seccmd"
tap_ok $? "the primary's shared memfd RAM is private RAM of the same id and size on the secondary"

# Checkpoints flow: the count grows while the guest keeps checking its memory.
c0=$(status_json .checkpoints)
vm_memcheck_progress 120
mc=$?
standby status --pid "$VM_PID" --json
c1=$(jq -r .checkpoints <<<"$OUT")
tap_diag "status: $OUT"
[ "$mc" = 0 ] && [ "${c1:-0}" -gt "${c0:-0}" ] && [ "$(jq -r .state <<<"$OUT")" = protecting ] && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "protecting: checkpoints $c0 -> $c1 while the guest ran a memory pass, clean"
[ "$(jq -r '[.host, (.standby_pid > 0), (.pause_median_ms > 0), (.pause_max_ms >= .pause_median_ms), .interval_ms] | @tsv' <<<"$OUT")" = \
	"$(printf '%s\ttrue\ttrue\ttrue\t500' "$REMOTE_B_IP")" ] && [ "$(jq -r '.last_checkpoint_ms_ago < 60000' <<<"$OUT")" = true ] &&
	[ "$(jq -r '[(.paused_total_ms >= .pause_max_ms), (.paused_share > 0), (.paused_share < 1)] | @tsv' <<<"$OUT")" = "$(printf 'true\ttrue\ttrue')" ]
tap_ok $? "status --json: host, standby_pid, pause median and max, interval, a recent checkpoint, the share of time paused ($(jq -r .paused_share <<<"$OUT"))"
# What the checkpoints carry, from the migration connection's own count: read after the
# status (the state file is written after the count moved), A's veth has sent at least that
# much, TCP/IP headers and the agent's session on top; and the migration is most of it.
standby status --pid "$VM_PID" --json
veth_tx=$(ip netns exec "$REMOTE_NS_A" cat "/sys/class/net/qua$$/statistics/tx_bytes")
read -r initial median max since <<<"$(jq -r '[.initial_copy_bytes, .bytes_per_checkpoint_median, .bytes_per_checkpoint_max, .bytes_since_protected] | @tsv' <<<"$OUT")"
tap_diag "bytes: initial copy $initial, per checkpoint median $median max $max, since protected $since; A's veth sent $veth_tx"
[ "${initial:-0}" -gt 0 ] && [ "${median:-0}" -gt 0 ] && [ "$max" -ge "$median" ] && [ "$since" -ge "$max" ] &&
	[ $((initial + since)) -le "$veth_tx" ] && [ $((2 * (initial + since))) -ge "$veth_tx" ]
tap_ok $? "status --json: bytes of the initial copy and per checkpoint, within what A's veth sent and most of it"
standby status --pid "$VM_PID"
grep -q '^state: protecting' <<<"$OUT" && grep -q '^checkpoints: [0-9]' <<<"$OUT" &&
	grep -q '^bytes per checkpoint: median [0-9.]* KiB, max [0-9.]* KiB' <<<"$OUT"
tap_ok $? "status in text: state, checkpoints, bytes per checkpoint"
p=$(ping_guest 10)
tap_diag "pings while protected: $p"
[ "${p%/*}" -ge 8 ]
tap_ok $? "the guest answers pings through colo-compare while protected ($p)"

# A second start of a protected VM is refused.
standby start --pid "$VM_PID" "${dest[@]}"
rc=$?
tap_diag "second start: exit $rc: $ERR"
[ "$rc" != 0 ] && grep -q "is protected already" <<<"$ERR"
tap_ok $? "a second start is refused: protected already"

# 2. stop: the primary alone again, B empty.
standby stop --pid "$VM_PID"
rc=$?
tap_diag "stop: exit $rc: $OUT $ERR"
[ "$rc" = 0 ] && grep -q '^state: stopped' <<<"$OUT"
tap_ok $? "standby stop: exit 0, state stopped"
wait_for 60 "B to hold no QEMU" remote_no_qemu
tap_diag "after stop: mode $(colo_mode), run state $(vm_runstate), objects $(objects), chardevs $(chardevs), capabilities $(caps_on), B's QEMUs: $(remote_qemus | tr '\n' ' ')"
[ "$(colo_mode)" = none ] && [ "$(vm_runstate)" = running ] && [ "$(objects)" = "$OBJECTS" ] && [ "$(chardevs)" = "$CHARDEVS" ] &&
	[ "$(caps_on)" = '[]' ] && [ -z "$(remote_qemus)" ]
tap_ok $? "after stop: no COLO, running, the objects, chardevs and capabilities as before; B runs no QEMU"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest goes on, clean"
p=$(ping_guest 5)
[ "${p%/*}" = 5 ]
tap_ok $? "pings answered without the filters ($p)"
[ -z "$(remote_tls_leaks "$tls_before")" ]
tap_ok $? "no TLS key left ($(remote_tls_leaks "$tls_before" | tr '\n' ' '))"
standby status --pid "$VM_PID" --json
[ "$(jq -r .state <<<"$OUT")" = stopped ]
tap_ok $? "status after stop: stopped"

# 3. Protected again, its owner having set pause-before-switchover (nothing would continue a
# migration held there without a disk: the start turns it off, the release puts it back); its
# supervisor dies: status says so, --recover releases the primary, and the agent stopped the
# secondary when the session ended.
vm_qmp "$VM_QMP" '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"pause-before-switchover","state":true}]}}' >/dev/null
standby start --pid "$VM_PID" "${dest[@]}" --interval 500
rc=$?
sup=$(sed -n 's/^supervisor: PID \([0-9]*\) .*/\1/p' <<<"$OUT")
tap_diag "again: exit $rc, supervisor ${sup:-none}: $ERR"
[ "$rc" = 0 ] && [ -n "$sup" ] && [ "$(colo_mode)" = primary ]
tap_ok $? "the same VM protected again after its stop, its owner's pause-before-switchover set"
kill -KILL "$sup"
wait_for 60 "B to hold no QEMU" remote_no_qemu
standby status --pid "$VM_PID" --json
tap_diag "supervisor killed: $OUT; B's QEMUs: $(remote_qemus | tr '\n' ' ')"
[ "$(jq -r .state <<<"$OUT")" = broken ] && jq -r .reason <<<"$OUT" | grep -q "the supervisor (PID $sup) is gone while protecting" &&
	[ -z "$(remote_qemus)" ]
tap_ok $? "its supervisor killed: status says broken (supervisor gone), and B's secondary was stopped"
rec=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" --recover 2>&1)
rc=$?
tap_diag "--recover: exit $rc: $rec"
p=$(ping_guest 5)
tap_diag "after --recover: mode $(colo_mode), run state $(vm_runstate), objects $(objects), chardevs $(chardevs), capabilities $(caps_on), pings $p"
[ "$rc" = 0 ] && grep -q "PID $VM_PID: its standby supervisor (PID $sup) was gone: protection ended" <<<"$rec" &&
	[ "$(colo_mode)" = none ] && [ "$(vm_runstate)" = running ] && [ "$(objects)" = "$OBJECTS" ] &&
	[ "$(chardevs)" = "$CHARDEVS" ] && [ "$(caps_on)" = '["pause-before-switchover"]' ] && [ "$p" = 5/5 ]
tap_ok $? "--recover released the primary: no COLO, running, nothing of ours left, the owner's pause-before-switchover back, pings answered ($p)"
vm_stop

tap_done
