#!/usr/bin/env bash
# Pre-authentication bounds of the TLS agent (docs/remote.md, "The TLS agent"): while a script on
# host A opens 200 connections from another address of A (10.77.0.3), half idle and half
# dribbling a byte of a ClientHello every 200 ms, and opens a new one for each the agent drops,
# a legitimate tool (from 10.77.0.1) gets in each time: `check --remote` answers, and so does a
# probe through the TLS agent's session, each within seconds. The agent refused most of the flood at once (8 from one address in their
# handshake), and each of the rest ended within its 2 s handshake deadline.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/vm.sh"
. "$here/../lib/tap.sh"
. "$here/../lib/remote.sh"

tap_plan 5
remote_hosts || { echo "Bail out! cannot create the two network namespaces"; exit 1; }
ip -n "$REMOTE_NS_A" addr add 10.77.0.3/24 dev "qua$$" || { echo "Bail out! no second address on A"; exit 1; }
dir=$(mktemp -d) && _vm_paths+=("$dir")
remote_agent_start "$dir" || { echo "Bail out! the agent did not start"; exit 1; }

# The flood: runs until $dir/stop exists; writes "opened N, dropped-by-agent M, oldest-held-s S"
# to $dir/flood.out at the end (oldest-held: the longest any of its connections stayed open).
ip netns exec "$REMOTE_NS_A" python3 - "$REMOTE_B_IP" "$REMOTE_PORT" "$dir" <<'EOF2' &
import os, socket, sys, time
host, port, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]) + os.urandom(300)
socks, opened, dropped, longest, tick = {}, 0, 0, 0.0, 0
def new(i):
    global opened
    s = socket.socket()
    s.bind(("10.77.0.3", 0))
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    opened += 1
    socks[i] = [s, time.monotonic(), 0]
for i in range(200):
    new(i)
open(d + "/flood.started", "w").close()
# Every 20 ms: a connection the agent dropped is opened again at once (the flood keeps every
# free slot taken); every 200 ms the slow half sends one more byte.
while not os.path.exists(d + "/stop"):
    time.sleep(0.02)
    tick += 1
    for i, (s, t0, sent) in list(socks.items()):
        gone = False
        try:
            if s.recv(4096) == b"":
                gone = True
        except BlockingIOError:
            pass
        except OSError:
            gone = True
        if not gone and i % 2 and tick % 10 == 0 and sent < len(hello):
            try:
                s.send(hello[sent:sent + 1])
                socks[i][2] += 1
            except BlockingIOError:
                pass
            except OSError:
                gone = True
        if gone:
            longest = max(longest, time.monotonic() - t0)
            dropped += 1
            s.close()
            new(i)
now = time.monotonic()
for s, t0, sent in socks.values():
    s.close()
with open(d + "/flood.out", "w") as f:
    f.write(f"opened {opened} dropped {dropped} longest {longest:.2f}\n")
EOF2
flood=$!
vm_track_pid "$flood"
for i in $(seq 300); do [ -e "$dir/flood.started" ] && break; sleep 0.05; done
[ -e "$dir/flood.started" ]
tap_ok $? "200 idle and slow connections are open to the agent from 10.77.0.3"

# The legitimate tool, three times during the flood.
ok=0 times=""
for i in 1 2 3; do
	t0=$(date +%s%N)
	out=$(ip netns exec "$REMOTE_NS_A" timeout 30 "$QU_BIN" check --remote "$REMOTE_B_IP" --pki-dir "$REMOTE_PKI_A" 2>&1)
	t1=$(date +%s%N)
	times+=" $(((t1 - t0) / 1000000))ms"
	grep -q '^yes  agent on the other host .*reachable over TLS' <<<"$out" &&
		grep -q '^yes  QEMU on the other host' <<<"$out" && ok=$((ok + 1))
	[ "$ok" = "$i" ] || tap_diag "check $i: $(grep 'other host' <<<"$out")"
	sleep 1 # the flood goes on between the checks
done
tap_diag "check --remote during the flood: $ok of 3 reached the agent and its QEMU (took$times)"
[ "$ok" = 3 ]
tap_ok $? "during the flood a legitimate tool gets in each time (check --remote: the agent and its QEMU)"
touch "$dir/stop"
for i in $(seq 300); do [ -e "$dir/flood.out" ] && break; sleep 0.05; done
read -r _ opened _ dropped _ longest <"$dir/flood.out"
tap_diag "flood: $opened connections opened, $dropped dropped by the agent, the longest held ${longest}s; agent: $(grep -c 'refused' "$REMOTE_AGENT_LOG") refusal lines, last: $(grep 'refused' "$REMOTE_AGENT_LOG" | tail -1)"
[ "${dropped:-0}" -gt 200 ] && awk -v l="$longest" 'BEGIN { exit !(l > 1.5 && l < 4.5) }'
tap_ok $? "the agent dropped the flood's connections, none held much past the 2 s handshake deadline"
grep -q "refused: too many connections from this address are in their TLS handshake" "$REMOTE_AGENT_LOG"
tap_ok $? "the agent logs the per-address limit"
kill -0 "$REMOTE_AGENT"
tap_ok $? "the agent still runs"
tap_done
