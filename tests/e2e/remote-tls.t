#!/usr/bin/env bash
# The TLS agent's authentication (docs/remote.md, "The TLS agent"), with certificates the test
# makes with openssl: a tool whose certificate no CA of the agent's signed (a self-signed one),
# a tool whose certificate the CA signed but whose name agent_tls_clients does not list, and an
# agent whose certificate does not name the address the tool was given, are each refused
# before anything is made on B (no QEMU, no file), with the reason in the tool's error and the
# agent's log, the VM on A untouched; a tool of the shared-key era is told in its own protocol
# what to do; then the right certificate still moves the VM.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

tap_plan 10
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
vm_guest_build || exit 1
VM_WRAP="ip netns exec $REMOTE_NS_A" vm_start rtls || exit 1
vm_wait_ready || exit 1
old_pid=$VM_PID
remote_agent_start "$VM_DIR" || { echo "Bail out! the agent did not start"; exit 1; }
B=/proc/$REMOTE_AGENT/root

# untouched WHAT: no QEMU and no file on B, the VM on A the same process, running.
untouched() {
	local files
	files=$(ls -A "$B$VM_DIR" 2>&1)
	tap_diag "$1: B's QEMUs: [$(remote_qemus)], B's files: [$files], A: PID $VM_PID $(vm_runstate)"
	[ -z "$(remote_qemus)" ] && [ -z "$files" ] && [ "$VM_PID" = "$old_pid" ] && [ "$(vm_runstate)" = running ]
}

# move PKI_DIR [HOST]: the tool on A moves the VM to B with the certificates in PKI_DIR; sets rc,
# err (its error).
move() {
	ip netns exec "$REMOTE_NS_A" "$QU_BIN" --pid "$VM_PID" --remote "${2:-$REMOTE_B_IP}" --pki-dir "$1" --json --quiet \
		>/dev/null 2>"$VM_DIR.err"
	rc=$?
	err=$(cat "$VM_DIR.err")
	_vm_paths+=("$VM_DIR.err")
}

# 1. A self-signed client certificate (its own CA, trusted by the tool alone).
self=$(mktemp -d) && _vm_paths+=("$self") && remote_ca "$self" "$REMOTE_CLIENT_NAME" &&
	cp "$self/ca-cert.pem" "$self/client-cert.pem" && cp "$self/ca-key.pem" "$self/client-key.pem" &&
	cat "$REMOTE_PKI_A/ca-cert.pem" >>"$self/ca-cert.pem"
move "$self"
tap_diag "self-signed: exit $rc: $err"
[ "$rc" = 2 ] && grep -q "TLS: the agent ended the connection" <<<"$err" &&
	agent_logged "TLS with $REMOTE_A_IP port [0-9]* refused: certificate verify failed"
tap_ok $? "a self-signed client certificate is refused (exit 2; the agent logs: certificate verify failed)"
untouched "self-signed"
tap_ok $? "nothing was made on B, the VM on A runs on"

# 2. The agent's CA signed it, but for a name agent_tls_clients does not list.
intruder=$(mktemp -d) && _vm_paths+=("$intruder") && cp "$REMOTE_PKI_A/ca-cert.pem" "$intruder/" &&
	remote_cert "$REMOTE_CA" "$intruder/client-cert.pem" "$intruder/client-key.pem" intruder.qu-test "DNS:intruder.qu-test"
move "$intruder"
tap_diag "unknown name: exit $rc: $err"
[ "$rc" = 2 ] && grep -q "has no name that agent_tls_clients in .* lists" <<<"$err" &&
	grep -q "intruder.qu-test" <<<"$err" && agent_logged "refused: the tool's certificate has no name"
tap_ok $? "a certificate of the right CA for a name not in agent_tls_clients is refused, the name shown"
untouched "unknown name"
tap_ok $? "nothing was made on B, the VM on A runs on"

# 3. An agent whose certificate names another address: the tool hangs up first.
agent=$REMOTE_AGENT agent_log=$REMOTE_AGENT_LOG
other=$(mktemp -d) && _vm_paths+=("$other") && cp "$REMOTE_PKI_B/ca-cert.pem" "$other/" &&
	remote_cert "$REMOTE_CA" "$other/server-cert.pem" "$other/server-key.pem" agent-c.qu-test "DNS:agent-c.qu-test,IP:10.77.0.9"
REMOTE_PKI_B=$other REMOTE_PORT=4780 remote_agent_start "$VM_DIR" || { echo "Bail out! the second agent did not start"; exit 1; }
impostor=$REMOTE_AGENT impostor_log=$REMOTE_AGENT_LOG
REMOTE_AGENT=$agent REMOTE_AGENT_LOG=$agent_log
move "$REMOTE_PKI_A" "$REMOTE_B_IP:4780"
tap_diag "name mismatch: exit $rc: $err; that agent: $(tail -n 2 "$impostor_log" | tr '\n' ' ')"
[ "$rc" = 2 ] && grep -q "TLS with the agent on $REMOTE_B_IP:4780 failed: .*IP address mismatch" <<<"$err" &&
	! grep -q "session" "$impostor_log"
tap_ok $? "an agent whose certificate does not name --remote's address is refused by the tool (IP address mismatch)"
[ -z "$(ls -A "/proc/$impostor/root$VM_DIR" 2>&1)" ] && [ -z "$(remote_qemus)" ] && [ "$(vm_runstate)" = running ]
tap_ok $? "nothing was made on B, the VM on A runs on"
kill "$impostor"

# 4. A tool of the shared-key era: its HELLO (the stream's magic first) gets an ERROR record.
said=$(printf 'QUPG\003\000\000\000\010\000\000\000\003\000\000\000' |
	ip netns exec "$REMOTE_NS_A" timeout 10 socat -t 5 - "TCP:$REMOTE_B_IP:$REMOTE_PORT" 2>/dev/null | tr -c '[:print:]' ' ')
tap_diag "old tool hears: $said"
grep -q "this agent speaks TLS with x509 certificates, not the shared key (--remote-key)" <<<"$said" && kill -0 "$REMOTE_AGENT"
tap_ok $? "a tool of the shared-key era is told, in its own protocol, to install the same version on both hosts"

# 5. The right certificate: check, then the move.
out=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" check --remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A" 2>&1)
tap_diag "check: $(grep 'on the other host' <<<"$out" | tr -s ' ')"
grep -q "^yes  agent on the other host .*reachable over TLS" <<<"$out"
tap_ok $? "check --remote: the agent is reachable over TLS with the right certificate"
remote_upgrade
tap_diag "move: exit $?: $(cat "$VM_DIR/err") $REPORT"
[ "$(json_get "$REPORT" result)" = upgraded ] && [ "$(json_get "$REPORT" tls)" = true ] &&
	[ "$(readlink "/proc/$VM_PID/ns/net")" = "$(readlink "/proc/$(ip netns pids "$REMOTE_NS_B" | head -1)/ns/net")" ]
tap_ok $? "the right certificate moves the VM to B (QEMU's migration over TLS)"
vm_memcheck_progress 60 && [ "$(vm_memcheck_errors)" = 0 ]
tap_ok $? "the guest makes progress on B, its memory clean"
tap_done
