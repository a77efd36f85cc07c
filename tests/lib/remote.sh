# remote.sh: two "hosts" on one machine for --remote tests. Host A and host B are network
# namespaces joined by a veth pair (10.77.0.1 and 10.77.0.2); the agent runs in B (started by
# a real sshd there for ssh://, or listening for TLS), in a private
# mount namespace where a tmpfs hides each VM directory it is given, so the new QEMU's
# sockets, pidfile, logs and disk images land at the same paths without touching A's. Read
# them through /proc/PID/root. Source after vm.sh; everything goes at exit.

REMOTE_A_IP=10.77.0.1
REMOTE_B_IP=10.77.0.2
REMOTE_PORT=4779

# remote_hosts: creates the namespaces (REMOTE_NS_A, REMOTE_NS_B) and the TLS agent's x509
# certificates, made here with openssl in libvirt's layout (remote_pki): REMOTE_PKI_A (the
# tool's: ca-cert.pem, client-cert.pem, client-key.pem, for --pki-dir) and REMOTE_PKI_B (the
# agent's: ca-cert.pem, server-cert.pem for 10.77.0.2, server-key.pem); REMOTE_CA (the CA's
# directory, to sign more); the tool's certificate names REMOTE_CLIENT_NAME.
remote_hosts() {
	REMOTE_NS_A=qu-ra-$$ REMOTE_NS_B=qu-rb-$$
	ip netns add "$REMOTE_NS_A" && ip netns add "$REMOTE_NS_B" || return 1
	# Whatever a failed test left running on either "host" goes by PID, then the namespaces.
	vm_defer "remote_kill_all; ip netns del $REMOTE_NS_A; ip netns del $REMOTE_NS_B"
	ip link add "qua$$" netns "$REMOTE_NS_A" type veth peer name "qub$$" netns "$REMOTE_NS_B" || return 1
	ip -n "$REMOTE_NS_A" addr add "$REMOTE_A_IP/24" dev "qua$$"
	ip -n "$REMOTE_NS_B" addr add "$REMOTE_B_IP/24" dev "qub$$"
	for ns in "$REMOTE_NS_A" "$REMOTE_NS_B"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$REMOTE_NS_A" link set "qua$$" up && ip -n "$REMOTE_NS_B" link set "qub$$" up || return 1
	remote_pki
}

REMOTE_CLIENT_NAME=tool-a.qu-test
# remote_ca DIR NAME: a CA (DIR/ca-cert.pem, DIR/ca-key.pem) named NAME.
remote_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$2" \
		-keyout "$1/ca-key.pem" -out "$1/ca-cert.pem" 2>/dev/null && chmod 600 "$1/ca-key.pem"
}

# remote_cert CA_DIR OUT_CERT OUT_KEY CN SAN: a certificate for CN with subjectAltName SAN
# ("IP:10.77.0.2", "DNS:x,IP:y") signed by the CA in CA_DIR (key mode 0600, root's).
remote_cert() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$4" -keyout "$3" 2>/dev/null |
		openssl x509 -req -CA "$1/ca-cert.pem" -CAkey "$1/ca-key.pem" -set_serial "0x$(openssl rand -hex 8)" \
			-days 2 -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$5") \
			-out "$2" 2>/dev/null && chmod 600 "$3" && [ -s "$2" ]
}

# remote_pki: the test's CA, the agent's certificate for B's address and the tool's for
# REMOTE_CLIENT_NAME (see remote_hosts).
remote_pki() {
	REMOTE_CA=$(mktemp -d) && REMOTE_PKI_A=$(mktemp -d) && REMOTE_PKI_B=$(mktemp -d) &&
		_vm_paths+=("$REMOTE_CA" "$REMOTE_PKI_A" "$REMOTE_PKI_B") || return 1
	remote_ca "$REMOTE_CA" qu-test-ca &&
		cp "$REMOTE_CA/ca-cert.pem" "$REMOTE_PKI_A/" && cp "$REMOTE_CA/ca-cert.pem" "$REMOTE_PKI_B/" &&
		remote_cert "$REMOTE_CA" "$REMOTE_PKI_B/server-cert.pem" "$REMOTE_PKI_B/server-key.pem" agent-b.qu-test \
			"DNS:agent-b.qu-test,IP:$REMOTE_B_IP" &&
		remote_cert "$REMOTE_CA" "$REMOTE_PKI_A/client-cert.pem" "$REMOTE_PKI_A/client-key.pem" \
			"$REMOTE_CLIENT_NAME" "DNS:$REMOTE_CLIENT_NAME"
}

# remote_agent_conf DIR...: the agent's policy for a test (QEMU_UPGRADE_CONF, docs/remote.md
# "Authorization"): the test VMs run as root, the agent may make files in each DIR (the VM
# directories it hides), and start 7.2 (and 10.0 once vm_qemu10 fetched it), unless
# REMOTE_AGENT_BINARIES says otherwise; the TLS agent lets in the tool's certificate
# (REMOTE_CLIENT_NAME, or the names in REMOTE_TLS_CLIENTS); it holds hot standbys only with
# REMOTE_AGENT_STANDBY=yes (agent_standby; the product's default is no). Sets REMOTE_AGENT_CONF.
remote_agent_conf() {
	REMOTE_AGENT_CONF=$(mktemp) && _vm_paths+=("$REMOTE_AGENT_CONF")
	printf 'agent_allow_root = yes\nagent_dirs = %s\nagent_binaries = %s\nagent_tls_clients = %s\nagent_standby = %s\n' "$*" \
		"${REMOTE_AGENT_BINARIES:-/usr/bin/qemu-system-x86_64${Q10:+ $Q10}}" "${REMOTE_TLS_CLIENTS:-$REMOTE_CLIENT_NAME}" \
		"${REMOTE_AGENT_STANDBY:-no}" >"$REMOTE_AGENT_CONF"
}

# remote_agent_start DIR...: starts the TLS agent (`qemu-upgrade agent --listen`, with the
# certificates in REMOTE_PKI_B) on host B with a tmpfs over each DIR,
# with the policy in the file REMOTE_AGENT_POLICY names (it reads it at each session's start),
# else remote_agent_conf DIR...'s; sets REMOTE_AGENT (its PID) and REMOTE_AGENT_LOG. Waits
# until it listens.
remote_agent_start() {
	remote_agent_start_in "$REMOTE_NS_B" "$REMOTE_B_IP" "$REMOTE_PKI_B" "$@"
}

# remote_agent_start_in NS IP PKI_DIR DIR...: remote_agent_start on another "host": the
# agent in network namespace NS listens on IP with the certificates in PKI_DIR (a move back
# to host A, say).
remote_agent_start_in() {
	local ns=$1 ip=$2 pki=$3 mounts="" d i conf=${REMOTE_AGENT_POLICY:-}
	shift 3
	for d in "$@"; do
		mounts+="mount -t tmpfs qu-remote '$d' && "
	done
	[ -n "$conf" ] || { remote_agent_conf "$@" && conf=$REMOTE_AGENT_CONF; } || return 1
	REMOTE_AGENT_LOG=$(mktemp) && _vm_paths+=("$REMOTE_AGENT_LOG")
	QEMU_UPGRADE_CONF=$conf ip netns exec "$ns" unshare -m --propagation private \
		sh -c "${mounts}exec '$QU_BIN' agent --listen $ip:$REMOTE_PORT --pki-dir '$pki'" \
		>"$REMOTE_AGENT_LOG" 2>&1 &
	REMOTE_AGENT=$!
	# Up to 30 s: a loaded machine starts processes slowly (the agent is up within ms otherwise).
	for i in $(seq 600); do
		grep -q 'agent: listening' "$REMOTE_AGENT_LOG" 2>/dev/null && break
		kill -0 "$REMOTE_AGENT" 2>/dev/null || break
		sleep 0.05
	done
	vm_track_pid "$REMOTE_AGENT" || return 1
	grep -q 'agent: listening' "$REMOTE_AGENT_LOG" || { cat "$REMOTE_AGENT_LOG" >&2; return 1; }
}

# agent_logged PATTERN [LOG]: the agent's log (REMOTE_AGENT_LOG) has a line matching the grep
# PATTERN, waiting up to 30 s for it: the tool may return (the peer's TLS alert, its ERROR
# record) before the agent has written the line, and a loaded machine widens that gap.
agent_logged() {
	local log=${2:-$REMOTE_AGENT_LOG}
	wait_for 30 "the agent's log ($log) to say: $1" grep -q -- "$1" "$log"
}

# remote_sshd_start DIR...: a real sshd on host B, as the agent's way in for ssh://: its own
# config, host key and root's authorized key in a temporary directory (the host's /etc/ssh
# is neither read nor changed), in a private mount namespace with a tmpfs over each DIR and a
# directory holding the tool under test as `qemu-upgrade` over /usr/local/bin, so that the
# agent is what sshd's PATH finds for the tool's own remote command. Sets REMOTE_SSHD (its
# PID: read B's files through /proc/REMOTE_SSHD/root), REMOTE_SSHD_LOG, REMOTE_SSH_DIR,
# REMOTE_SSH_URI (ssh://root@10.77.0.2:PORT), and exports QEMU_UPGRADE_SSH (ssh with that key
# and a known_hosts file that holds B's host key, and no other configuration). REMOTE_SSHD_ENV
# ("VAR=VALUE ...", no spaces in a value): the environment sshd gives the agent on top of its
# own (SetEnv; the test hooks, e.g. QEMU_UPGRADE_CONF). REMOTE_B_IP6: an IPv6 address of B
# that sshd listens on too (known_hosts names it as well). Waits until sshd listens.
REMOTE_SSH_PORT=2222
remote_sshd_start() {
	local mounts="" d i dir bin
	dir=$(mktemp -d) && _vm_paths+=("$dir") && REMOTE_SSH_DIR=$dir
	bin=$dir/bin && mkdir "$bin" && ln -s "$QU_BIN" "$bin/qemu-upgrade" || return 1
	ssh-keygen -q -t ed25519 -N '' -C qu-test-host -f "$dir/host_key" &&
		ssh-keygen -q -t ed25519 -N '' -C qu-test-tool -f "$dir/id" || return 1
	cp "$dir/id.pub" "$dir/authorized_keys"
	echo "[$REMOTE_B_IP]:$REMOTE_SSH_PORT $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
	[ -z "${REMOTE_B_IP6:-}" ] ||
		echo "[$REMOTE_B_IP6]:$REMOTE_SSH_PORT $(cut -d' ' -f1,2 "$dir/host_key.pub")" >>"$dir/known_hosts"
	cat >"$dir/sshd_config" <<-EOF
		Port $REMOTE_SSH_PORT
		ListenAddress $REMOTE_B_IP
		HostKey $dir/host_key
		AuthorizedKeysFile $dir/authorized_keys
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		PidFile none
		LogLevel VERBOSE
	EOF
	[ -z "${REMOTE_SSHD_ENV:-}" ] || echo "SetEnv $REMOTE_SSHD_ENV" >>"$dir/sshd_config"
	[ -z "${REMOTE_B_IP6:-}" ] || echo "ListenAddress $REMOTE_B_IP6" >>"$dir/sshd_config"
	for d in "$@"; do
		mounts+="mount -t tmpfs qu-remote '$d' && "
	done
	mkdir -p /run/sshd # sshd's privilege separation directory (the package's own)
	REMOTE_SSHD_LOG=$dir/sshd.log
	ip netns exec "$REMOTE_NS_B" unshare -m --propagation private \
		sh -c "${mounts}mount --bind '$bin' /usr/local/bin && exec /usr/sbin/sshd -D -e -f '$dir/sshd_config'" \
		>"$REMOTE_SSHD_LOG" 2>&1 &
	REMOTE_SSHD=$!
	REMOTE_AGENT=$REMOTE_SSHD # B's mount namespace, for the tests' /proc/PID/root paths
	for i in $(seq 600); do
		grep -q 'Server listening' "$REMOTE_SSHD_LOG" 2>/dev/null && break
		kill -0 "$REMOTE_SSHD" 2>/dev/null || break
		sleep 0.05
	done
	vm_track_pid "$REMOTE_SSHD" || return 1
	grep -q 'Server listening' "$REMOTE_SSHD_LOG" || { cat "$REMOTE_SSHD_LOG" >&2; return 1; }
	REMOTE_SSH_URI=ssh://root@$REMOTE_B_IP:$REMOTE_SSH_PORT
	export QEMU_UPGRADE_SSH="ssh -F /dev/null -i $dir/id -o IdentitiesOnly=yes -o UserKnownHostsFile=$dir/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"
}

# remote_agents [NS]: PIDs of qemu-upgrade agents (sshd's children) in host B's (or NS's)
# network namespace.
remote_agents() {
	local p
	for p in $(ip netns pids "${1:-$REMOTE_NS_B}"); do
		{ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -q '^qemu-upgrade agent --stdio' && echo "$p"
	done
}

# remote_agent_pair: "PARENT SESSION", the agent sshd started on B and its session child (the
# session's own children, forked before they exec, look like agents too: they are neither);
# fails while there is no such pair.
remote_agent_pair() {
	local p pp top= session= all
	all=$(remote_agents)
	for p in $all; do
		pp=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null)
		grep -qxF -- "$pp" <<<"$all" || top=$p
	done
	for p in $all; do
		[ -n "$top" ] && [ "$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null)" = "$top" ] && session=$p
	done
	[ -n "$session" ] && echo "$top $session"
}

# remote_upgrade ARGS...: the tool on host A moves VM_PID to host B (over REMOTE_SSH_URI once
# remote_sshd_start set it, else to the TLS agent with the certificates in REMOTE_PKI_A); sets REPORT, and
# VM_PID (tracked) and VM_SERIAL/VM_QMP (through /proc/PID/root) to the new QEMU when it moved.
remote_upgrade() {
	local rc new dest=(--remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A")
	[ -z "${REMOTE_SSH_URI:-}" ] || dest=(--remote "$REMOTE_SSH_URI")
	REPORT=$(ip netns exec "$REMOTE_NS_A" "$QU_BIN" --pid "$VM_PID" "${dest[@]}" "$@" --json --quiet 2>"$VM_DIR/err")
	rc=$?
	new=$(jq -r '.new_pid // empty' <<<"$REPORT" 2>/dev/null)
	if [ "$(jq -r .result <<<"$REPORT" 2>/dev/null)" = upgraded ] && [ -n "$new" ]; then
		VM_PID=$new
		vm_track_pid "$VM_PID"
		VM_SERIAL=/proc/$VM_PID/root$VM_DIR/serial.log
		VM_QMP=/proc/$VM_PID/root$VM_DIR/qmp.sock
	fi
	return $rc
}

# remote_qemus [NS]: PIDs of QEMUs in host B's (or NS's) network namespace.
remote_qemus() {
	local p
	for p in $(ip netns pids "${1:-$REMOTE_NS_B}"); do
		case $(readlink "/proc/$p/exe" 2>/dev/null) in *qemu-system*) echo "$p" ;; esac
	done
}

# remote_no_qemu [NS]: no QEMU runs on host B (or in NS); a condition for wait_for.
remote_no_qemu() { [ -z "$(remote_qemus "$@")" ]; }

# remote_tls_leaks [BEFORE]: TLS key directories (/run/qemu-upgrade-tls-MAKER-RANDOM) whose
# maker is gone, and that are not in BEFORE (an earlier listing): a key left behind. Other
# tests may hold theirs meanwhile; theirs have a living maker.
remote_tls_leaks() {
	local d maker
	for d in $(ls -d /run/qemu-upgrade-tls-* 2>/dev/null); do
		maker=${d#/run/qemu-upgrade-tls-} maker=${maker%%-*}
		grep -qxF "$d" <<<"${1:-}" || kill -0 "$maker" 2>/dev/null || echo "$d"
	done
}

# remote_kill_all: every process left in either namespace (this test's alone: they are its
# own), by PID.
remote_kill_all() {
	local p
	for p in $(ip netns pids "$REMOTE_NS_A" 2>/dev/null) $(ip netns pids "$REMOTE_NS_B" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null
	done
	sleep 0.2
}
