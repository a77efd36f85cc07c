#!/usr/bin/env bash
# Least privilege for the tool itself. During an upgrade of a VM run by nobody, once the VM is
# inspected, the tool holds only the capabilities the rest needs (no sys_module, sys_rawio,
# sys_boot, sys_time, mknod, ...), and the upgrade still goes through. On the other host, the
# TLS agent reads a peer that has not authenticated (the handshake, then the relay) in a
# process that is nobody, holds no capability and runs under a seccomp filter: garbage, a
# certificate another CA signed and a silent peer each end that process alone, the agent
# serves on, and the right certificate still gets in.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

tap_plan 8
base=$(mktemp -d)
_vm_paths+=("$base")
export QEMU_UPGRADE_STATE_DIR=$base/state

# has_cap HEX N: capability N is in the set HEX.
has_cap() { (((0x$1 >> $2) & 1)); }
capset() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }

VM_OWNER=nobody VM_WRAP="setpriv --reuid=65534 --regid=65534 --clear-groups" vm_start trustpriv || exit 1
vm_wait_ready || exit 1

# 1. The tool, standing just after the inspection (fault point 1).
QEMU_UPGRADE_FAULT=1:pause=3000 "$QU_BIN" --pid "$VM_PID" --json >"$base/out" 2>"$base/err" &
tool=$!
end=$((SECONDS + 60))
until grep -q "fault point 1: pausing" "$base/err" 2>/dev/null; do # the file may not be made yet
	kill -0 "$tool" 2>/dev/null && [ $SECONDS -lt $end ] || break
	sleep 0.05
done
eff=$(capset "$tool" CapEff) prm=$(capset "$tool" CapPrm)
tap_diag "the tool during the upgrade: CapEff $eff ($(capsh --decode="$eff" 2>/dev/null | sed 's/.*=//'))"
dropped=1
for cap in 16 17 22 25 27 28 31 38 39; do # sys_module sys_rawio sys_boot sys_time mknod lease setfcap perfmon bpf
	has_cap "$eff" $cap || has_cap "$prm" $cap && { tap_diag "still holds capability $cap"; dropped=0; }
done
[ -n "$eff" ] && [ "$dropped" = 1 ] && has_cap "$eff" 19 && has_cap "$eff" 7
tap_ok $? "after inspection the tool holds only what the upgrade needs (no sys_module, rawio, boot, time, mknod, ...)"
wait "$tool"
rc=$?
tap_diag "upgrade: rc $rc $(json_get "$(cat "$base/out")" result) $(json_get "$(cat "$base/out")" error)"
[ $rc = 0 ] && [ "$(json_get "$(cat "$base/out")" result)" = upgraded ]
tap_ok $? "the upgrade goes through with them"
VM_PID=$(cat "$VM_DIR/qemu.pid")
vm_track_pid "$VM_PID"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress, clean"

# 2. The agent's handshake.
remote_hosts || { echo "Bail out! cannot make the two hosts"; exit 1; }
remote_agent_start "$base" || { echo "Bail out! the agent did not start"; exit 1; }
# preauth_child: the process that reads a connection before its handshake (a grandchild of
# the agent: the session's child), or nothing.
preauth_child() {
	local s c
	for s in $(cat "/proc/$REMOTE_AGENT/task/$REMOTE_AGENT/children" 2>/dev/null); do
		for c in $(cat "/proc/$s/task/$s/children" 2>/dev/null); do echo "$c"; done
	done
}
# A peer that connects and says nothing.
coproc SILENT { exec ip netns exec "$REMOTE_NS_A" socat -t 60 - "TCP:$REMOTE_B_IP:$REMOTE_PORT"; }
vm_track_pid "$SILENT_PID"
end=$((SECONDS + 30))
while c=$(preauth_child) && [ -z "$c" ] && [ $SECONDS -lt $end ]; do sleep 0.05; done
tap_diag "pre-authentication process $c: $(grep -E '^(Uid|CapEff|CapPrm|NoNewPrivs|Seccomp):' "/proc/$c/status" 2>/dev/null | tr -s '\t\n' '  ')"
[ -n "$c" ] && grep -q '^Uid:[[:space:]]*65534' "/proc/$c/status" && [ "$(capset "$c" CapEff)" = 0000000000000000 ] &&
	[ "$(capset "$c" CapPrm)" = 0000000000000000 ] && grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$c/status" &&
	grep -q '^Seccomp:[[:space:]]*2' "/proc/$c/status"
tap_ok $? "a peer not yet authenticated is read by a process that is nobody, without capabilities, under seccomp"

kill "$SILENT_PID" 2>/dev/null

# Garbage instead of a handshake.
head -c 4096 /dev/urandom | ip netns exec "$REMOTE_NS_A" timeout 10 socat -t 2 - "TCP:$REMOTE_B_IP:$REMOTE_PORT" >/dev/null 2>&1
kill -0 "$REMOTE_AGENT"
tap_ok $? "garbage: the agent still runs"

# A certificate another CA signed, then the right one.
wrong=$base/wrong-pki && mkdir "$wrong" && remote_ca "$wrong" other-ca &&
	remote_cert "$wrong" "$wrong/client-cert.pem" "$wrong/client-key.pem" "$REMOTE_CLIENT_NAME" "DNS:$REMOTE_CLIENT_NAME" &&
	cp "$REMOTE_PKI_A/ca-cert.pem" "$wrong/ca-cert.pem"
out=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" check --remote "$REMOTE_B_IP" --pki-dir "$wrong" 2>&1)
tap_diag "another CA: $(grep 'agent on the other host' <<<"$out")"
grep -q "TLS: the agent ended the connection (tlsv1 alert unknown ca)" <<<"$out" && kill -0 "$REMOTE_AGENT"
tap_ok $? "a certificate another CA signed: refused (unknown ca), the agent still runs"
out=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" check --remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A" 2>&1)
tap_diag "the right certificate: $(grep 'agent on the other host' <<<"$out")"
grep -q "reachable over TLS" <<<"$out"
tap_ok $? "the right certificate gets in through the sandboxed handshake"
[ -z "$(preauth_child)" ]
tap_ok $? "no pre-authentication process is left"
tap_done
