#!/bin/bash
# bench/remote.sh [SIZES...]: `qemu-upgrade --remote` against a plain QEMU TCP migration done
# by hand, between two "hosts" on this machine, for guests of SIZES GiB (default 1 2 4), RUNS
# runs each (default 3); writes bench/REMOTE-RESULTS.md.
#
# The two hosts are network namespaces A and B joined by a veth pair (10.77.0.1, 10.77.0.2),
# as in tests/lib/remote.sh. Every method moves the same kind of VM (firmware only, plain
# anonymous `-m` RAM, no disk) from A to B over that veth:
#   remote:  `qemu-upgrade --pid PID --remote 10.77.0.2 --pki-dir PKI --json` run in A (the
#            TLS agent); `qemu-upgrade agent --listen` in B, in a private mount namespace with
#            a tmpfs over the run's directory (the new QEMU's sockets and pidfile land at the
#            same paths).
#   remote-ssh: `qemu-upgrade --pid PID --remote ssh://root@10.77.0.2:2222 --json` run in A
#            (the ssh transport): the tool runs ssh, which runs `qemu-upgrade agent --stdio` in
#            B. QEMU_UPGRADE_SSH gives the tool's ssh the bench's key and a known_hosts file
#            with B's host key, and no other configuration; B runs a real sshd (its own
#            sshd_config, host key and authorized key in the helpers' directory, `UsePAM no`)
#            in the same private mount namespace as the TLS agent, where the directory that
#            holds the tool is bound over /usr/local/bin (and /usr/local/sbin, which comes
#            first) so that sshd's PATH finds it as `qemu-upgrade`, as tests/lib/remote.sh's
#            remote_sshd_start does. sshd, like the TLS agent, is started before each run and
#            not timed; the tool's ssh connection is (an operator waits for it).
#   migrate: what an operator does by hand: the same command line in B plus `-S -incoming
#            tcp:10.77.0.2:PORT`, capability `events` and `max-bandwidth` 1 TiB/s (what
#            qemu-upgrade sets: UNLIMITED_BANDWIDTH in upgrade/execute.c) on the source,
#            `migrate`, wait for `completed`, `cont` on the destination, `quit` the source.
#   migrate-memfd: the same by hand, but the destination's RAM is a shared memfd, as the
#            agent gives its new QEMU (a control: how much of the difference is the kind of
#            memory the copy lands in): `-object memory-backend-memfd,id=pc.ram,size=SIZE,
#            share=on -machine memory-backend=pc.ram` added to the destination's command line
#            (the source keeps its plain `-m`). The backend's id must be `pc.ram`, q35's
#            default-ram-id: QEMU 7.2 names the RAM block of implicit `-m` RAM `pc.ram` and
#            refuses an incoming stream whose block it does not have (with id=mem0 the
#            destination fails with `Unknown ramblock "pc.ram", cannot accept migration`).
#
# Environment: METHODS (default "remote migrate migrate-memfd", run in that order within each
# run; remote-ssh on request), RUNS (3), COLD_WAIT (seconds between filling guest RAM and the measured
# operation, default 10 + 3 per GiB: see README.md, Caveats), QEMU
# (/usr/bin/qemu-system-x86_64), ACCEL (default: kvm if a SeaBIOS guest runs under it, else
# tcg, probed by bench.py), QU_BIN (<repo>/build/qemu-upgrade), OUT (bench/REMOTE-RESULTS.md),
# QU_ARGS (more qemu-upgrade options, e.g. --no-tls; recorded with the results).
#
# One VM (or one migration pair) exists at a time. Every process a run starts is killed by
# PID when the run ends: the ones it knows, and every process left in the two namespaces,
# which are this script's own (named after its PID). A size that does not fit in MemAvailable
# (2 x size + 1.5 GiB: both QEMUs hold the guest's RAM at the peak, both on this machine) is
# skipped with a message.
set -u
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1 2 4)
DEFAULT_METHODS="remote migrate migrate-memfd"
SET_RUNS=${RUNS+set} SET_METHODS=${METHODS+set}
RUNS=${RUNS:-3}
METHODS=${METHODS:-$DEFAULT_METHODS}
COLD_WAIT=${COLD_WAIT:-}
QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}
QU_BIN=${QU_BIN:-$ROOT/build/qemu-upgrade}
OUT=${OUT:-$BENCH/REMOTE-RESULTS.md}
QU_ARGS=${QU_ARGS:-}
# The command line recorded in the results names every setting that was given.
COMMAND="bench/remote.sh${*:+ $*}"
[ -z "$SET_RUNS" ] && [ "$RUNS" = 3 ] || COMMAND="RUNS=$RUNS $COMMAND"
[ -z "$SET_METHODS" ] && [ "$METHODS" = "$DEFAULT_METHODS" ] || COMMAND="METHODS=\"$METHODS\" $COMMAND"
[ -z "$COLD_WAIT" ] || COMMAND="COLD_WAIT=$COLD_WAIT $COMMAND"
[ -z "${ACCEL:-}" ] || COMMAND="ACCEL=$ACCEL $COMMAND"
[ "$QEMU" = /usr/bin/qemu-system-x86_64 ] || COMMAND="QEMU=$QEMU $COMMAND"
[ "$QU_BIN" = "$ROOT/build/qemu-upgrade" ] || COMMAND="QU_BIN=$QU_BIN $COMMAND"
[ -z "$QU_ARGS" ] || COMMAND="QU_ARGS=\"$QU_ARGS\" $COMMAND"
[ "$OUT" = "$BENCH/REMOTE-RESULTS.md" ] || COMMAND="OUT=${OUT#$ROOT/} $COMMAND"

A_IP=10.77.0.1
B_IP=10.77.0.2
AGENT_PORT=4779
SSH_PORT=2222
MIG_PORT=4444
GiB=$((1 << 30))
MiB=$((1 << 20))
MARGIN=$((3 * GiB / 2))

die() { echo "remote.sh: $*" >&2; exit 2; }
say() { echo "remote.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, guest RAM written through /proc/PID/mem, the agent opens devices and starts QEMU as the VM's user)"
for s in "${SIZES[@]}"; do
	[[ $s =~ ^[1-9][0-9]*$ ]] || die "sizes are whole GiB: '$s'"
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS is a positive number: '$RUNS'"
read -ra METHOD_LIST <<<"$METHODS"
[ ${#METHOD_LIST[@]} -gt 0 ] || die "METHODS is empty"
for m in "${METHOD_LIST[@]}"; do
	case $m in
	remote | remote-ssh | migrate | migrate-memfd) ;;
	*) die "unknown method '$m' in METHODS (remote, remote-ssh, migrate, migrate-memfd)" ;;
	esac
done
WANT_SSH=
[[ " $METHODS " != *" remote-ssh "* ]] || WANT_SSH=1
[ -z "$COLD_WAIT" ] || [[ $COLD_WAIT =~ ^[0-9]+([.][0-9]+)?$ ]] || die "COLD_WAIT is seconds: '$COLD_WAIT'"
for c in ip unshare python3 gcc jq ${WANT_SSH:+ssh ssh-keygen}; do
	command -v "$c" >/dev/null || die "needs $c"
done
[ -z "$WANT_SSH" ] || [ -x /usr/sbin/sshd ] || die "remote-ssh needs sshd (/usr/sbin/sshd, package openssh-server)"
[ -x "$QEMU" ] || die "no QEMU at $QEMU"
if [ ! -x "$QU_BIN" ]; then
	make -C "$ROOT" >&2 || die "building qemu-upgrade failed"
fi

HELPERS=$(mktemp -d /tmp/qu-rbench-helpers.XXXXXX) || exit 2
NS_A=qu-rbench-a-$$ NS_B=qu-rbench-b-$$
NS_MADE=()        # the namespaces this script created (and deletes at exit)
RUN_DIR=
RUN_PIDS=()       # "PID:STARTTIME" of what the current run started
MW_PID=

# Start time of a process (field 22 of /proc/PID/stat), so that a recycled PID is never
# killed.
starttime() {
	local stat f
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	read -r -a f <<<"${stat##*) }"
	echo "${f[19]}"
}

track() {
	local st
	st=$(starttime "$1") && RUN_PIDS+=("$1:$st")
}

# kill_pid PID STARTTIME: SIGTERM, SIGKILL after 5 s; waits until it is gone (15 s at most).
# A daemonized QEMU is not our child: poll /proc rather than wait.
kill_pid() {
	local pid=$1 st=$2 i
	for i in $(seq 150); do
		[ "$(starttime "$pid")" = "$st" ] || return 0
		[ "$i" = 1 ] && kill -TERM "$pid" 2>/dev/null
		[ "$i" = 50 ] && kill -KILL "$pid" 2>/dev/null
		sleep 0.1
	done
	say "process $pid did not die"
}

# ns_pids: every process in the two namespaces. They are this script's own (their names
# carry its PID), so whatever is left there at the end of a run is something the run
# started whose PID it may not have learned (a new QEMU after a failed upgrade, a guardian).
ns_pids() {
	ip netns pids "$NS_A" 2>/dev/null
	ip netns pids "$NS_B" 2>/dev/null
}

end_run() {
	local e p st
	if [ -n "$MW_PID" ]; then
		kill -TERM "$MW_PID" 2>/dev/null
		wait "$MW_PID" 2>/dev/null
		MW_PID=
	fi
	for p in $(ns_pids); do
		st=$(starttime "$p") && RUN_PIDS+=("$p:$st")
	done
	for e in "${RUN_PIDS[@]}"; do
		kill_pid "${e%%:*}" "${e#*:}"
	done
	RUN_PIDS=()
	[ -z "$RUN_DIR" ] || rm -rf -- "$RUN_DIR"
	RUN_DIR=
}

cleanup() {
	end_run
	local ns
	for ns in "${NS_MADE[@]}"; do
		ip netns del "$ns"
	done
	rm -rf -- "$HELPERS"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# Every run uses the same qemu-upgrade (tool and agent): a copy, since others may rebuild
# build/qemu-upgrade while this runs, with the libqemu-upgrade.so it loads (the build's
# binary finds it next to itself, RPATH $ORIGIN; the code is in the library). The report
# names both builds. The directory holding them is B's /usr/local/bin (b_host).
mkdir "$HELPERS/bin" && cp "$QU_BIN" "$HELPERS/bin/qemu-upgrade" || die "cannot copy $QU_BIN"
QU_LIB=$(ldd "$QU_BIN" | sed -n 's/^[[:space:]]*libqemu-upgrade\.so[.0-9]* => \(\/[^ ]*\) .*/\1/p')
[ -z "$QU_LIB" ] || cp "$QU_LIB" "$HELPERS/bin/" || die "cannot copy $QU_LIB"
build_id() { echo "$(date -u -d "@$(stat -c %Y "$1")" +%Y-%m-%dT%H:%M:%SZ) sha256:$(sha256sum "$1" | cut -c1-12)"; }
QU_BUILD_ID=$(build_id "$QU_BIN")
[ -z "$QU_LIB" ] || QU_BUILD_ID+=", ${QU_LIB##*/} $(build_id "$QU_LIB")"
export QU_BUILD_ID
QU_BIN=$HELPERS/bin/qemu-upgrade
"$QU_BIN" --help >/dev/null 2>&1 || die "the copy of qemu-upgrade does not run: $("$QU_BIN" --help 2>&1 | head -n 1)"
gcc -O2 -Wall -Wextra -o "$HELPERS/fill-ram" "$BENCH/fill-ram.c" || die "fill-ram build failed"
gcc -O2 -Wall -Wextra -o "$HELPERS/memwatch" "$BENCH/memwatch.c" || die "memwatch build failed"

# The QMP side (plain migration, run states) and the report, in Python with bench.py's QMP
# client (standard library only).
cat >"$HELPERS/rbench.py" <<'EOF'
import json, os, select, statistics, subprocess, sys, time
sys.path.insert(0, os.environ["BENCH"])
from bench import QMP, BenchError, MAX_BANDWIDTH

GiB, MiB = 1 << 30, 1 << 20
# The methods in the report's order, and their column headings.
METHODS = [("remote", "qemu-upgrade --remote (TLS agent)"), ("remote-ssh", "qemu-upgrade --remote ssh://"),
           ("migrate", "plain migration"), ("migrate-memfd", "plain migration into a memfd")]
# The ratios given (numerator / denominator, medians), where both were measured.
RATIOS = [("remote", "migrate", "TLS agent / plain"), ("remote-ssh", "migrate", "ssh / plain"),
          ("remote-ssh", "remote", "ssh / TLS agent"), ("migrate-memfd", "migrate", "memfd / plain"),
          ("remote", "migrate-memfd", "TLS agent / memfd")]
# The two qemu-upgrade methods.
TOOL = ("remote", "remote-ssh")


def status(path):
    try:
        q = QMP(path)
        try:
            print(q.cmd("query-status")["status"])
        finally:
            q.close()
    except (BenchError, OSError) as e:
        print(f"unreachable ({e})")


def migrate(src_qmp, src_pid, dst_qmp, dst_pidfile, uri, dst_cmd):
    """Plain migration by hand; prints one JSON object. Times are host wall clock, the
    same clock as QMP event timestamps."""
    r = {}
    src = QMP(src_qmp)
    st = src.cmd("query-status")["status"]
    if st != "running":
        raise BenchError(f"source not running: {st}")
    src.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    src.cmd("migrate-set-parameters", **{"max-bandwidth": MAX_BANDWIDTH})
    if src.cmd("query-migrate-parameters").get("max-bandwidth") != MAX_BANDWIDTH:
        raise BenchError("max-bandwidth not set")
    srcfd = os.pidfd_open(src_pid)
    t_start = time.time()
    p = subprocess.run(dst_cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if p.returncode != 0:
        raise BenchError(f"destination QEMU failed: {(p.stdout + p.stderr).strip()}")
    with open(dst_pidfile) as f:
        r["dst_pid"] = int(f.read().strip())
    print(json.dumps({"dst_pid": r["dst_pid"]}), file=sys.stderr, flush=True)
    dst = QMP(dst_qmp)
    dst.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    r["dst_start_ms"] = (time.time() - t_start) * 1000
    t_mig = time.time()
    src.cmd("migrate", uri=uri)
    done = src.wait_event(lambda e: e["event"] == "MIGRATION" and
                          e["data"]["status"] in ("completed", "failed", "cancelled"), 600)
    if done is None or done["data"]["status"] != "completed":
        info = src.cmd("query-migrate")
        raise BenchError(f"migration did not complete: {info.get('status')} "
                         f"{info.get('error-desc', '')}")
    # As qemu-upgrade's agent does: the incoming side complete, then cont.
    if dst.wait_event(lambda e: e["event"] == "MIGRATION" and
                      e["data"]["status"] in ("completed", "failed"), 60) is None:
        raise BenchError("destination: no MIGRATION completed event")
    dst.cmd("cont")
    resume = dst.wait_event(lambda e: e["event"] == "RESUME", 60)
    if resume is None:
        raise BenchError(f"destination did not resume: {dst.cmd('query-status')['status']}")
    stop = src.wait_event(lambda e: e["event"] == "STOP", 1)
    info = src.cmd("query-migrate")
    r["dst_state"] = dst.cmd("query-status")["status"]
    src.cmd("quit")
    src.close()
    # The source is gone once every thread has exited (a pidfd is readable then): the
    # counterpart of qemu-upgrade's wait for the old QEMU.
    select.select([srcfd], [], [], 60)
    r["src_exit_ms"] = (time.time() - t_start) * 1000
    dst.close()
    ram = info.get("ram", {})
    r.update(total_ms=(resume["ts"] - t_mig) * 1000,
             running_ms=(resume["ts"] - t_start) * 1000,
             pause_ms=(resume["ts"] - stop["ts"]) * 1000 if stop else None,
             downtime_ms=info.get("downtime"), ram_bytes=ram.get("transferred"),
             qemu_total_ms=info.get("total-time"), setup_ms=info.get("setup-time"),
             mbps=ram.get("mbps"), dirty_syncs=ram.get("dirty-sync-count"))
    print(json.dumps(r))


def fnum(x):
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def vals(rows, key, scale):
    return [float(r[key]) / scale for r in rows if r.get(key) not in ("", None)]


def cell(rows, key, scale, unit):
    v = vals(rows, key, scale)
    if not v:
        return "n/a"
    m = statistics.median(v)
    return f"{fnum(m)}{unit}" + (f" ({fnum(min(v))}–{fnum(max(v))})" if len(v) > 1 else "")


def median(rows, key, scale=1):
    v = vals(rows, key, scale)
    return statistics.median(v) if v else None


def ssh_version():
    p = subprocess.run(["ssh", "-V"], capture_output=True, text=True)
    return (p.stderr or p.stdout).strip().split(",")[0] or "?"


def shmem_thp():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "?"


def report(tsv, out, command, accel, qemu, skipped):
    with open(tsv) as f:
        lines = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    head, rows = lines[0], [dict(zip(lines[0], l)) for l in lines[1:]]
    ok = [r for r in rows if r["result"] == "ok"]
    qver = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    with open("/proc/meminfo") as f:
        memtotal = int(f.readline().split()[1]) * 1024
    model = ""
    with open("/proc/cpuinfo") as f:
        for l in f:
            if l.startswith("model name"):
                model = l.split(":", 1)[1].strip()
                break
    try:
        commit = subprocess.run(["git", "-C", os.environ["BENCH"], "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", os.environ["BENCH"], "status", "--porcelain", "--",
                                ":(top)", ":(top,exclude)bench"], capture_output=True, text=True).stdout.split("\n")
        dirty = [d[3:] for d in dirty if d.strip()]
    except OSError:
        commit, dirty = "", []
    stamps = sorted(r["timestamp"] for r in rows)
    present = {r["method"] for r in rows}

    def strategies(m):
        return ", ".join(f"`{s}`" for s in sorted({r["strategy"] for r in ok if r["method"] == m and r["strategy"]})) or "n/a"
    sizes = sorted({int(r["size_gib"]) for r in rows}, key=int)
    o = []
    o.append("# `qemu-upgrade --remote` against a plain QEMU migration done by hand\n")
    o.append(f"- Command: `{command}`")
    o.append(f"- Date: runs from {stamps[0] if stamps else '?'} to {stamps[-1] if stamps else '?'}"
             + f", report written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
             + (f" (repository at {commit}" + (", with uncommitted changes outside bench/ to "
                + ", ".join(f"`{d}`" for d in dirty) if dirty else "") + ")" if commit else ""))
    o.append(f"- qemu-upgrade: `{os.environ.get('QU_BUILD_ID', '?')}` (build time and sha256 of the "
             "binary and of its library, copied once at the start: every run used the same ones)")
    o.append(f"- QEMU: {qver} (`{qemu}`), the same binary on both \"hosts\"")
    o.append(f"- Accelerator: `-accel {accel}` (every method; probed as bench/run.sh does: kvm "
             "if a SeaBIOS guest keeps running under it)")
    o.append(f"- Machine: {os.cpu_count()} CPUs ({model}), MemTotal {memtotal / GiB:.1f} GiB, "
             f"kernel {os.uname().release}; load average (1 min) when the measured operations "
             f"started: {fnum(min(float(r['loadavg']) for r in rows)) if rows else '?'}–"
             f"{fnum(max(float(r['loadavg']) for r in rows)) if rows else '?'}")
    o.append("- Hosts: network namespaces A (10.77.0.1) and B (10.77.0.2) joined by a veth "
             "pair, on this one machine. Guest: SeaBIOS only, no disk (so neither `--copy-storage` "
             "nor `--shared-storage` is exercised), no NIC, idle: "
             "`-machine q35 -m SIZE -nodefaults -display none -qmp unix:...` (anonymous RAM), "
             "started in A; a fresh VM for every run")
    qu_args = os.environ.get("QU_ARGS", "")
    qemu_tls = ("QEMU's migration over plain TCP, `--no-tls`" if "--no-tls" in qu_args else
                "QEMU's migration over QEMU's own TLS, `tls-creds-psk` with a key the tool draws for "
                "each move and sends inside the authenticated channel: the default since commit "
                "'QEMU's migration and the disk copy over TLS by default'")
    if "remote" in present:
        o.append("- **qemu-upgrade, TLS agent**: `qemu-upgrade --pid PID --remote 10.77.0.2 --pki-dir PKI "
                 + (qu_args + " " if qu_args else "") + "--json` in A (" + qemu_tls + "); "
                 "`qemu-upgrade agent --listen 10.77.0.2:4779` in B (in a private mount namespace with "
                 "a tmpfs over the VM's directory), started before the run and not timed. Strategy "
                 "reported: " + strategies("remote") + "; the new QEMU's RAM is a memfd the agent creates")
    if "remote-ssh" in present:
        o.append("- **qemu-upgrade over ssh**: `qemu-upgrade --pid PID --remote ssh://root@10.77.0.2:2222 "
                 + (qu_args + " " if qu_args else "") + "--json` in A, with `QEMU_UPGRADE_SSH` = "
                 "`ssh -F /dev/null -i KEY -o IdentitiesOnly=yes -o UserKnownHostsFile=KNOWN_HOSTS "
                 "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes` (" + qemu_tls + "); "
                 "the tool's ssh (" + ssh_version() + ") runs `qemu-upgrade agent --stdio` in B through "
                 "a real sshd there (its own sshd_config, ed25519 host and user keys, `UsePAM no`), in "
                 "the same private mount namespace as the TLS agent, started before the run and not "
                 "timed; the tool's ssh connection is timed. Strategy reported: " + strategies("remote-ssh"))
    o.append("- **plain migration**: destination started in B with the same command line (its "
             "own QMP socket and pidfile) plus `-S -incoming tcp:10.77.0.2:4444`; on the source "
             "`migrate-set-capabilities events`, `migrate-set-parameters max-bandwidth` "
             f"{MAX_BANDWIDTH} (1 TiB/s, qemu-upgrade's UNLIMITED_BANDWIDTH), default "
             "`downtime-limit` (300 ms, also qemu-upgrade's default); `migrate "
             "tcp:10.77.0.2:4444`, wait for `completed` (source and destination), `cont` on "
             "the destination (as libvirt and qemu-upgrade's agent do), `quit` the source")
    o.append("- **plain migration into a memfd** (a control: the destination's RAM in the same "
             "kind of memory as qemu-upgrade's new QEMU gets): the same, with "
             "`-object memory-backend-memfd,id=pc.ram,size=SIZE,share=on -machine "
             "memory-backend=pc.ram` added to the destination's command line (the source keeps "
             "its plain `-m`; the id must be q35's default-ram-id `pc.ram`, the RAM block name "
             "of implicit `-m` RAM, or QEMU 7.2 refuses the stream: `Unknown ramblock`). The "
             "agent gives its new QEMU a `memory-backend-file` over a memfd it creates (`share=on`); "
             "both are shmem in 4 KiB pages here (shmem THP `never`)"
             if shmem_thp() == "never" else
             "- **plain migration into a memfd** (a control: the destination's RAM in the same "
             "kind of memory as qemu-upgrade's new QEMU gets): the same, with "
             "`-object memory-backend-memfd,id=pc.ram,size=SIZE,share=on -machine "
             "memory-backend=pc.ram` added to the destination's command line (the source keeps "
             "its plain `-m`; the id must be q35's default-ram-id `pc.ram`, the RAM block name "
             "of implicit `-m` RAM, or QEMU 7.2 refuses the stream: `Unknown ramblock`). The "
             "agent gives its new QEMU a `memory-backend-file` over a memfd it creates (`share=on`); "
             f"shmem THP here: `{shmem_thp()}`")
    waits = sorted({(int(r["size_gib"]), r["wait_s"]) for r in rows if r["wait_s"]})
    o.append("- Guest RAM filled with a non-zero pattern (`bench/fill-ram`, all but the first "
             "MiB and the 32 MiB below the top of low memory) before every run, then a wait "
             "of " + ", ".join(f"{w} s ({g} GiB)" for g, w in waits) + " (COLD_WAIT, see "
             "README.md), and checked again in the new QEMU after every run (0 bad pages "
             "needed)")
    if skipped:
        o.append(f"- Skipped: {skipped}")
    o.append("")
    meths = [(m, h) for m, h in METHODS if m in present]
    ratios = [x for x in RATIOS if x[0] in present and x[1] in present]
    o.append("Median of the measured runs, min–max in parentheses; ratios of the medians "
             "(TLS agent = qemu-upgrade --remote to the TLS agent, ssh = qemu-upgrade --remote "
             "ssh://, plain = plain migration, memfd = plain migration into a memfd).\n")
    metrics = [
        ("connected to the agent⁶", "connect_ms", 1, " ms"),
        ("migration started (the new QEMU waits on B)⁶", "migrate_ms", 1, " ms"),
        ("from `migrate` until the guest runs on B⁷", "copy_ms", 1, " ms"),
        ("total time¹", "total_ms", 1, " ms"),
        ("until the guest runs on B²", "running_ms", 1, " ms"),
        ("until the old QEMU has exited³", "retired_ms", 1, " ms"),
        ("guest pause (source STOP → destination RESUME)", "pause_ms", 1, " ms"),
        ("QEMU downtime (source `query-migrate`)", "downtime_ms", 1, " ms"),
        ("guest RAM copied⁴", "ram_bytes", MiB, " MiB"),
        ("peak extra host memory (MemAvailable drop)⁵", "peak_extra_bytes", MiB, " MiB"),
        ("... held by processes (AnonPages + Shmem rise)⁵", "held_extra_bytes", MiB, " MiB"),
    ]
    for s in sizes:
        by = {m: [r for r in ok if int(r["size_gib"]) == s and r["method"] == m] for m, _ in meths}
        bad = [r for r in rows if int(r["size_gib"]) == s and r["result"] != "ok"]
        o.append(f"## {s} GiB guest ({' + '.join(str(len(by[m])) for m, _ in meths)} runs measured)\n")
        o.append("| metric | " + " | ".join(h for _, h in meths) + "".join(f" | {n}" for _, _, n in ratios) + " |")
        o.append("|" + " --- |" * (1 + len(meths) + len(ratios)))
        for name, key, scale, unit in metrics:
            rats = []
            for x, y, _ in ratios:
                a, b = median(by[x], key, scale), median(by[y], key, scale)
                rats.append(f"{a / b:.2f}x" if a is not None and b else "n/a")
            cells = [cell(by[m], key, scale, unit) for m, _ in meths]
            if all(c == "n/a" for c in cells):
                continue
            o.append(f"| {name} | " + " | ".join(cells) + "".join(f" | {x}" for x in rats) + " |")
        for r in bad:
            o.append(f"\n- run {r['run']} {r['method']}: **{r['result']}**: {r['note']}")
        o.append("")
    o.append("1. qemu-upgrade (both transports): its report's `total_ms`, from the tool's start "
             "(inspect the VM, connect and authenticate to the agent: the TLS agent's TLS 1.3 "
             "handshake, or ssh's connection, key exchange and authentication and sshd starting "
             "`qemu-upgrade agent --stdio`; plan, the agent starts the new QEMU, "
             "migrate, resume, announce) until the old QEMU has exited. Plain migration: from "
             "the `migrate` command to the destination's RESUME event (the destination already "
             "started: what the brief of this benchmark asked for; the two rows below compare "
             "like with like); the same for plain migration into a memfd.")
    o.append("2. qemu-upgrade (both): its report's `commit_ms` (the new QEMU runs the guest). Plain "
             "migration (both): from starting the destination QEMU to its RESUME event.")
    o.append("3. qemu-upgrade (both): `total_ms` again. Plain migration (both): from starting the destination "
             "QEMU until the source, sent `quit` after the `cont`, has exited (pidfd readable).")
    o.append("4. qemu-upgrade (both): its report's `ram_copied_bytes` (`transferred_bytes` is in the "
             "runs table); plain migration (both): `ram.transferred` of `query-migrate`.")
    o.append("5. bench/memwatch: the median MemAvailable over 250 ms before the operation minus "
             "its lowest value during it (every 5 ms); and the same for AnonPages + Shmem (its highest value), which leaves out what the kernel parks on its per-CPU free lists. Both host-wide: both \"hosts\" are this "
             "machine, so this is the destination's copy of the guest RAM plus whatever else "
             "the operation allocates, plus noise from other jobs. On two real hosts the "
             "source would need none of it.")
    if present & set(TOOL):
        o.append("6. qemu-upgrade (both): the time stamp of its progress line `connected to the agent "
                 "on ...` (stderr, ms since the tool's start): the VM inspected (QMP, /proc) and the "
                 "agent's answer to HELLO received (`transport=tls` or `transport=ssh`); and of "
                 "`migration started` (the plan made, the new QEMU started on B and waiting, `migrate` "
                 "sent to the old QEMU).")
        o.append("7. The copy alone, the same span for every method: qemu-upgrade: `commit_ms` minus "
                 "the time stamp of `migration started` (so the resume, `cont` and the agent's answer "
                 "are in it; the stamps count from the tool's start, `commit_ms` from the upgrade's, a little "
                 "later: less apart than a run's `tool wall` and `total_ms`, tens of ms); plain "
                 "migration: its total time (from `migrate` to the destination's RESUME).")
    o.append("")
    # What this shows, from the numbers.
    o.append("## What this shows, and caveats\n")
    parts = []
    for s in sizes:
        by = {m: [r for r in ok if int(r["size_gib"]) == s and r["method"] == m] for m, _ in METHODS}
        got = [m for m, _ in METHODS if by[m]]
        if len(got) < 2:
            continue
        med = {m: (median(by[m], "running_ms"), median(by[m], "retired_ms"), median(by[m], "pause_ms"))
               for m in got}
        short = {"remote": "TLS agent", "remote-ssh": "ssh", "migrate": "plain", "migrate-memfd": "plain into a memfd"}
        p = f"{s} GiB: guest on B after " + ", ".join(f"{fnum(med[m][0])} ({short[m]})" for m in got) + " ms"
        p += "".join(f"; {n} {med[x][0] / med[y][0]:.2f}x ({med[x][0] - med[y][0]:+.0f} ms)"
                     for x, y, n in RATIOS if x in got and y in got)
        p += "; old QEMU gone after " + ", ".join(f"{fnum(med[m][1])}" for m in got) + " ms"
        p += "; pause " + ", ".join(f"{fnum(med[m][2])}" for m in got) + " ms"
        parts.append(p)
    if parts:
        o.append("Like for like (from the start of the operation, new QEMU's start included), "
                 "medians: " + "; ".join(parts) + ".\n")
    others = [int(r["other_qemus"]) for r in rows if r.get("other_qemus") not in ("", None)]
    loads = [float(r["loadavg"]) for r in rows]
    o.append("@@NOTES@@")
    o.append("")
    o.append("## Runs\n")
    o.append("| size | method | run | result | strategy | connected ms | total ms | guest on B ms | old gone ms | "
             "pause ms | downtime ms | RAM MiB | sent MiB | extra mem MiB | held MiB | max gap ms | load | other QEMUs | note |")
    o.append("|" + " --- |" * 19)

    def f(r, k, scale=1):
        return fnum(float(r[k]) / scale) if r.get(k) not in ("", None) else ""
    for r in rows:
        o.append(f"| {r['size_gib']} | {r['method']} | {r['run']} | {r['result']} | {r['strategy']} | "
                 f"{f(r, 'connect_ms')} | {f(r, 'total_ms')} | {f(r, 'running_ms')} | {f(r, 'retired_ms')} | "
                 f"{f(r, 'pause_ms')} | {f(r, 'downtime_ms')} | {f(r, 'ram_bytes', MiB)} | "
                 f"{f(r, 'sent_bytes', MiB)} | {f(r, 'peak_extra_bytes', MiB)} | "
                 f"{f(r, 'held_extra_bytes', MiB)} | {r['mem_max_gap_ms']} | {r['loadavg']} | "
                 f"{r.get('other_qemus', '')} | {r['note'].strip().rstrip(';')} |")
    text = "\n".join(o) + "\n"
    text = text.replace("@@NOTES@@", default_notes(others, loads, memfd_note(ok, sizes)))
    with open(out, "w") as f:
        f.write(text)


def memfd_note(ok, sizes):
    """What the memfd control says about qemu-upgrade's lead over plain migration, from the
    medians of "until the guest runs on B"; None without all three methods."""
    parts = []
    for s in sizes:
        m = {k: median([r for r in ok if int(r["size_gib"]) == s and r["method"] == k], "running_ms")
             for k in ("remote", "migrate", "migrate-memfd")}
        if None in m.values():
            continue
        lead, mem, rest = m["migrate"] - m["remote"], m["migrate"] - m["migrate-memfd"], m["remote"] - m["migrate-memfd"]
        p = (f"{s} GiB: into a memfd {fnum(m['migrate-memfd'])} against {fnum(m['migrate'])} ms into "
             f"anonymous RAM ({-mem:+.0f} ms, {m['migrate-memfd'] / m['migrate']:.2f}x); qemu-upgrade "
             f"{fnum(m['remote'])} ms, {rest:+.0f} ms against the memfd control")
        if lead > 0:
            p += f" (the kind of memory is {100 * mem / lead:.0f}% of its {lead:.0f} ms lead over plain migration)"
        parts.append(p)
    if not parts:
        return None
    return ("- **The kind of memory the copy lands in**: the agent gives the new QEMU its RAM in a "
            "memfd (so that its next upgrade on B is zero-copy), plain migration's destination has "
            "anonymous RAM (transparent huge pages); the third method is plain migration into a "
            "memfd, by hand. Until the guest runs on B, medians: " + "; ".join(parts) + ". What is "
            "left against the control is qemu-upgrade's own cost or gain over the same copy by "
            "hand into the same kind of memory (the fixed costs in the previous item; its "
            "`memory-backend-file` over a memfd against `memory-backend-memfd`) and noise.")


def default_notes(others, loads, memfd=None):
    return "\n".join([
        "- **No real network.** Both \"hosts\" are namespaces on one machine joined by a veth: "
        "the copy runs at memory speed through the kernel's loopback path, bounded by the "
        "CPUs (the two QEMUs' migration threads and the copying share the same cores), not "
        "by a link. On a real 10 or 25 Gbit/s link the copy itself dominates and the fixed "
        "costs below weigh less in the ratio.",
        "- **What qemu-upgrade adds on top of QEMU's migration**: connecting to the agent (the "
        "TLS agent: a TCP connection and a TLS 1.3 handshake with a certificate checked each way; "
        "ssh: ssh's connection, key exchange and public-key authentication, then sshd starting "
        "`qemu-upgrade agent --stdio`), inspecting the VM (QMP, /proc), the agent "
        "probing the binary on B (`-version`, machine types), the handover stream, the agent "
        "starting the new QEMU (`-incoming defer`, its RAM in a memfd it creates) and "
        "`migrate-incoming`, then after the copy the resume round trip, `cont`, "
        "`announce-self`, and retiring the old QEMU. Plain migration's destination start is "
        "counted in the like-for-like rows above, not in its \"total time\" row.",
        memfd or (
        "- **The two copies do not land in the same kind of memory**, and that, not the tool, "
        "is most likely why qemu-upgrade's copy was the faster one where it was: the agent gives "
        "the new QEMU its RAM in a memfd (so that its next upgrade on B is zero-copy), plain "
        "migration's destination has anonymous RAM (transparent huge pages). When this script "
        "was written, a plain migration of a 2 GiB guest on this host into a destination with "
        "`memory-backend-memfd,share=on` (tried by hand, twice each) took 1.3 s against 1.9 s "
        "into anonymous RAM; bench/RESULTS.md shows the same gap between qemu-upgrade's local "
        "precopy (into a memfd) and plain migration at 1 and 4 GiB. The fixed costs in the previous item are "
        "hidden inside that difference, not measured apart. (METHODS with migrate-memfd "
        "measures it.)"),
        "- **Memory**: both QEMUs are on this machine, so the MemAvailable drop is the "
        "destination's whole copy; on two hosts the source host needs nothing extra. "
        "qemu-upgrade's destination RAM is a memfd (shared memory, 4 KiB pages unless shmem "
        "THP is on), as is the memfd control's, plain migration's is anonymous memory (transparent huge pages): the "
        "kernel's per-CPU free lists grow differently under the two (README.md, Caveats), "
        "which moves MemAvailable without a process holding more.",
        "- **The guest is idle** (firmware only): precopy converges at once; a busy guest "
        "would make every method send more and pause longer, in the same QEMU code.",
        "- **Shared machine**: " + (
            f"other QEMUs (the test suite, run concurrently) were running at the start of "
            f"{sum(1 for x in others if x)} of {len(others)} measured operations (up to "
            f"{max(others)} at once), load average {min(loads):.1f}–{max(loads):.1f}: "
            "single runs vary by tens of percent."
            if others and max(others) else
            f"no other QEMU was running when the operations started; load average "
            f"{min(loads):.1f}–{max(loads):.1f}." if loads else "n/a"),
        "- Few runs (medians of 3 at most); the host is itself a VM (nested KVM, free page "
        "reporting to its hypervisor: README.md, Caveats).",
    ])


if __name__ == "__main__":
    cmd = sys.argv[1]
    try:
        if cmd == "status":
            status(sys.argv[2])
        elif cmd == "migrate":
            i = sys.argv.index("--")
            a = sys.argv[2:i]
            migrate(a[0], int(a[1]), a[2], a[3], a[4], sys.argv[i + 1:])
        elif cmd == "report":
            report(*sys.argv[2:8])
    except (BenchError, OSError) as e:
        print(json.dumps({"error": str(e)}))
        sys.exit(1)
EOF
export BENCH

if [ -z "${ACCEL:-}" ]; then
	ACCEL=$(python3 "$BENCH/bench.py" probe-accel --qemu "$QEMU") || die "accelerator probe failed"
fi

# The two hosts, and the key both sides hold.
ip netns add "$NS_A" && NS_MADE+=("$NS_A") && ip netns add "$NS_B" && NS_MADE+=("$NS_B") ||
	die "cannot create network namespaces"
ip link add "qrba$$" netns "$NS_A" type veth peer name "qrbb$$" netns "$NS_B" || die "cannot create the veth pair"
ip -n "$NS_A" addr add "$A_IP/24" dev "qrba$$"
ip -n "$NS_B" addr add "$B_IP/24" dev "qrbb$$"
for ns in "$NS_A" "$NS_B"; do
	ip -n "$ns" link set lo up
done
ip -n "$NS_A" link set "qrba$$" up && ip -n "$NS_B" link set "qrbb$$" up || die "cannot bring the veth up"
. "$(dirname "${BASH_SOURCE[0]}")/pki.sh" # make_pki: the TLS agent's certificates
PKI=$HELPERS/pki
make_pki "$PKI" "$B_IP" || die "cannot make the TLS certificates (openssl)"

# remote-ssh: B's sshd (host key, root's authorized key: the tool's, its own sshd_config) and
# the tool's ssh command (that key, a known_hosts with B's host key alone, no ssh_config), in
# the helpers' directory (root's, mode 0700: hence StrictModes no, as under /tmp).
SSH_DIR=$HELPERS/ssh
if [ -n "$WANT_SSH" ]; then
	mkdir -m 700 "$SSH_DIR" &&
		ssh-keygen -q -t ed25519 -N '' -C qu-bench-host -f "$SSH_DIR/host_key" &&
		ssh-keygen -q -t ed25519 -N '' -C qu-bench-tool -f "$SSH_DIR/id" &&
		cp "$SSH_DIR/id.pub" "$SSH_DIR/authorized_keys" &&
		echo "[$B_IP]:$SSH_PORT $(cut -d' ' -f1,2 "$SSH_DIR/host_key.pub")" >"$SSH_DIR/known_hosts" ||
		die "cannot make the ssh keys (ssh-keygen)"
	cat >"$SSH_DIR/sshd_config" <<-EOF
		Port $SSH_PORT
		ListenAddress $B_IP
		HostKey $SSH_DIR/host_key
		AuthorizedKeysFile $SSH_DIR/authorized_keys
		PermitRootLogin prohibit-password
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
		PidFile none
		LogLevel VERBOSE
	EOF
	mkdir -p /run/sshd # sshd's privilege separation directory (the package's own)
	SSH_CMD="ssh -F /dev/null -i $SSH_DIR/id -o IdentitiesOnly=yes -o UserKnownHostsFile=$SSH_DIR/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"
fi

TSV=$HELPERS/results.tsv
FIELDS=(size_gib method run result strategy connect_ms migrate_ms copy_ms total_ms running_ms retired_ms pause_ms downtime_ms
	ram_bytes sent_bytes peak_extra_bytes held_extra_bytes mem_samples mem_max_gap_ms verify_bad fill_s wait_s loadavg other_qemus
	timestamp note)
(IFS=$'\t'; echo "${FIELDS[*]}") >"$TSV"
declare -A ROW
emit() {
	local f line=()
	for f in "${FIELDS[@]}"; do
		line+=("${ROW[$f]:-}")
	done
	(IFS=$'\t'; echo "${line[*]//$'\t'/ }") >>"$TSV"
}

mem_available() { awk '/^MemAvailable:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo; }

# wait_for_memory BYTES: memory the previous run freed can take a moment to show in
# MemAvailable; give it 60 s.
wait_for_memory() {
	local i
	for i in $(seq 240); do
		[ "$(mem_available)" -ge "$1" ] && return 0
		sleep 0.25
	done
	return 1
}

# settle_memory: after a run, until MemAvailable stops rising (the freed RAM is back).
settle_memory() {
	local last now i
	last=$(mem_available)
	for i in $(seq 60); do
		sleep 0.5
		now=$(mem_available)
		[ $((now - last)) -lt $((32 * MiB)) ] && return
		last=$now
	done
}

# The guest pages the idle SeaBIOS uses, left out of the fill: the first MiB and the 32 MiB
# below the top of low memory (q35 in 7.2: 2 GiB for guests of 2.75 GiB or more, else all).
skip_ranges() {
	local size=$1 low below
	low=$((size >= 0xB0000000 ? 0x80000000 : 0xB0000000))
	below=$((size < low ? size : low))
	printf '0-0x100000,%#x-%#x' $((below - 32 * MiB)) "$below"
}

# other_qemus: QEMUs running on the machine that are not this run's (the test suite may be
# running at the same time: noise).
other_qemus() {
	local n=0 p mine=" $(ns_pids | tr '\n' ' ') "
	for p in /proc/[0-9]*; do
		case $(readlink "$p/exe" 2>/dev/null) in
		*qemu-system*) [[ $mine == *" ${p#/proc/} "* ]] || n=$((n + 1)) ;;
		esac
	done
	echo "$n"
}

memwatch_start() {
	"$HELPERS/memwatch" 5000 >"$RUN_DIR/memwatch.out" &
	MW_PID=$!
	local i
	for i in $(seq 200); do
		grep -q ready "$RUN_DIR/memwatch.out" 2>/dev/null && return 0
		sleep 0.01
	done
	return 1
}

# memwatch_stop: sets ROW[peak_extra_bytes] (MemAvailable), ROW[held_extra_bytes] (AnonPages
# + Shmem: what processes hold, without the kernel's free-list effects), the sample count and
# the longest gap between two samples (the sampler competes with the QEMUs for the CPUs).
memwatch_stop() {
	kill -TERM "$MW_PID" 2>/dev/null
	wait "$MW_PID" 2>/dev/null
	MW_PID=
	local line
	line=" $(tail -n 1 "$RUN_DIR/memwatch.out")"
	mw_field() { sed -n "s/.* $1=\(-\{0,1\}[0-9]*\).*/\1/p" <<<"$line"; }
	local peak held gap
	peak=$(mw_field peak_extra_kb) held=$(mw_field held_extra_kb) gap=$(mw_field max_gap_us)
	ROW[peak_extra_bytes]=${peak:+$((peak * 1024))}
	ROW[held_extra_bytes]=${held:+$((held * 1024))}
	ROW[mem_samples]=$(mw_field samples)
	ROW[mem_max_gap_ms]=${gap:+$((gap / 1000))}
}

vm_args() { # DIR NAME SIZE [memfd]: the VM's command line (every method, source and destination)
	echo "-accel $ACCEL -machine q35 -m ${3}G -nodefaults -display none" \
		"-qmp unix:$1/$2.qmp,server=on,wait=off -daemonize -pidfile $1/$2.pid"
	# migrate-memfd's destination: the RAM in a shared memfd. The id is q35's default-ram-id,
	# so that the RAM block is named `pc.ram` as the source's implicit one is (the header).
	[ "${4:-}" != memfd ] ||
		echo "-object memory-backend-memfd,id=pc.ram,size=${3}G,share=on -machine memory-backend=pc.ram"
}

# ram_mapping PID SIZE: what backs the QEMU's guest RAM (the mapping of SIZE bytes), for the
# run's note.
ram_mapping() {
	local range perms off dev inode name
	while read -r range perms off dev inode name; do
		[ $((16#${range#*-} - 16#${range%-*})) = "$2" ] || continue
		echo "${name:-anonymous} $([ "${perms:3:1}" = s ] && echo shared || echo private)"
		return
	done <"/proc/$1/maps"
	echo "? (no mapping of $2 bytes)"
} 2>/dev/null

# prepare SIZE: a fresh VM in A, its RAM filled, COLD_WAIT. Sets VM_PID, SEED, SKIP.
prepare() {
	local size=$1 bytes=$(($1 * GiB)) out
	# shellcheck disable=SC2046
	if ! ip netns exec "$NS_A" "$QEMU" $(vm_args "$RUN_DIR" vm "$size") \
		</dev/null >"$RUN_DIR/vm.err" 2>&1; then
		ROW[note]="QEMU failed to start: $(tr '\n' ' ' <"$RUN_DIR/vm.err")"
		return 1
	fi
	VM_PID=$(cat "$RUN_DIR/vm.pid") && track "$VM_PID"
	SEED=$(($(date +%s%N) / 1000000 & 0xFFFFFFFF))
	SKIP=$(skip_ranges "$bytes")
	out=$("$HELPERS/fill-ram" fill "$VM_PID" "$bytes" "$SEED" "$SKIP") ||
		{ ROW[note]="fill-ram failed: $out"; return 1; }
	ROW[fill_s]=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$out")
	local w=${COLD_WAIT:-$((10 + 3 * size))}
	ROW[wait_s]=$w
	sleep "$w"
	local st
	st=$(python3 "$HELPERS/rbench.py" status "$RUN_DIR/vm.qmp")
	[ "$st" = running ] || { ROW[note]="guest not running after the fill: $st"; return 1; }
	ROW[loadavg]=$(cut -d' ' -f1 /proc/loadavg)
	ROW[other_qemus]=$(other_qemus)
}

# check_after PID QMP: the guest runs on B with the RAM it had.
check_after() {
	local st bad
	st=$(python3 "$HELPERS/rbench.py" status "$2")
	bad=$("$HELPERS/fill-ram" verify "$1" "$((SIZE * GiB))" "$SEED" "$SKIP" | sed -n 's/.*bad_pages=\([0-9]*\).*/\1/p')
	ROW[verify_bad]=$bad
	[ "$st" = running ] || { ROW[note]+="new QEMU run state $st; "; return 1; }
	[ "$bad" = 0 ] || { ROW[note]+="${bad:-?} guest pages differ after the move; "; return 1; }
}

# b_host READY COMMAND: host B for this run, started before the measurement as a daemon would
# be: COMMAND (a shell command line that execs the server) in B's network namespace and a
# private mount namespace with a tmpfs over the run's directory, so that the new QEMU's QMP
# socket and pidfile land at the same paths; the agent's policy (the VM runs as root, its
# files in the run's directory: docs/remote.md, "Authorization") in an /etc/qemu-upgrade.conf
# of B's own (an overlay on /etc, for any build: the installed one reads no other file; the
# agent sshd starts reads it there too); and the directory holding the tool bound over
# /usr/local/bin and /usr/local/sbin, which sshd's PATH for root searches before any other
# qemu-upgrade; root's home a tmpfs with Debian's stock dot files (/usr/share/base-files), so
# that root's shell on B starts as on a stock host: sshd runs the agent through root's shell
# (`bash -c`), and Debian's bash reads ~/.bashrc when sshd runs it; the /root/.bashrc of the
# machine this was written on runs `pyenv init`, which cost 0.3-0.6 s per connection (README.md,
# the remote section). Waits up to 30 s for the line READY in its log (a loaded machine starts
# processes slowly); tracks its PID.
b_host() {
	local ready=$1 cmd=$2 pid i
	mkdir -p "$HELPERS/etc"
	ip netns exec "$NS_B" unshare -m --propagation private \
		sh -c "mount -t tmpfs qu-rbench '$RUN_DIR' && mount -t tmpfs qu-rbench-etc '$HELPERS/etc' &&
			mkdir '$HELPERS/etc/up' '$HELPERS/etc/work' &&
			mount -t overlay qu-rbench-etc -o 'lowerdir=/etc,upperdir=$HELPERS/etc/up,workdir=$HELPERS/etc/work' /etc &&
			printf 'agent_allow_root = yes\nagent_dirs = %s\nagent_binaries = %s\nagent_tls_clients = tool.qu-bench\n' '$RUN_DIR' '$QEMU' >/etc/qemu-upgrade.conf &&
			mount --bind '$HELPERS/bin' /usr/local/bin && mount --bind '$HELPERS/bin' /usr/local/sbin &&
			mount -t tmpfs -o mode=700 qu-rbench-root /root &&
			{ cp /usr/share/base-files/dot.bashrc /root/.bashrc; cp /usr/share/base-files/dot.profile /root/.profile; } 2>/dev/null;
			$cmd" >"$RUN_DIR/b.log" 2>&1 &
	pid=$!
	for i in $(seq 600); do
		grep -q "$ready" "$RUN_DIR/b.log" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	track "$pid"
	grep -q "$ready" "$RUN_DIR/b.log" ||
		{ ROW[note]="host B did not start ($cmd): $(tr '\n' ' ' <"$RUN_DIR/b.log")"; return 1; }
}

# tool_stamp TEXT: the time stamp (ms since the tool's start) of the tool's first progress line
# that begins with TEXT, or "?".
tool_stamp() {
	local t
	t=$(sed -n "s/^\[ *\([0-9.]*\) ms\] $1.*/\1/p" "$RUN_DIR/tool.err" | head -n 1)
	echo "${t:-?}"
}

# run_remote tls|ssh: qemu-upgrade --remote, to the TLS agent or over ssh.
run_remote() {
	local report rc new t0 t1 how=$1 dest tool_env=()
	if [ "$how" = ssh ]; then
		b_host 'Server listening' "exec /usr/sbin/sshd -D -e -f '$SSH_DIR/sshd_config'" || return 1
		dest=(--remote "ssh://root@$B_IP:$SSH_PORT")
		tool_env=("QEMU_UPGRADE_SSH=$SSH_CMD")
	else
		b_host 'agent: listening' "exec '$QU_BIN' agent --listen $B_IP:$AGENT_PORT --pki-dir '$PKI/b'" ||
			return 1
		dest=(--remote "$B_IP" --pki-dir "$PKI/a")
	fi
	prepare "$SIZE" || return 1
	memwatch_start || { ROW[note]="memwatch did not start"; return 1; }
	t0=$(date +%s%N)
	# Its progress lines (stderr) say when it was connected to the agent.
	# shellcheck disable=SC2086
	report=$(env "${tool_env[@]}" ip netns exec "$NS_A" "$QU_BIN" --pid "$VM_PID" "${dest[@]}" \
		$QU_ARGS --json 2>"$RUN_DIR/tool.err")
	rc=$?
	t1=$(date +%s%N)
	memwatch_stop
	new=$(jq -r '.new_pid // empty' <<<"$report" 2>/dev/null)
	[ -z "$new" ] || track "$new"
	if [ $rc != 0 ] || [ "$(jq -r .result <<<"$report" 2>/dev/null)" != upgraded ]; then
		ROW[note]="qemu-upgrade exit $rc: $(jq -r '.error // .refusal // empty' <<<"$report" 2>/dev/null) $(grep -v '^{"event"' "$RUN_DIR/tool.err" | tail -n 3 | tr '\n' ' ')"
		return 1
	fi
	ROW[strategy]=$(jq -r .strategy <<<"$report")
	ROW[total_ms]=$(jq -r .total_ms <<<"$report")
	ROW[running_ms]=$(jq -r .commit_ms <<<"$report")
	ROW[retired_ms]=${ROW[total_ms]}
	ROW[pause_ms]=$(jq -r .pause_ms <<<"$report")
	ROW[downtime_ms]=$(jq -r .downtime_ms <<<"$report")
	ROW[ram_bytes]=$(jq -r .ram_copied_bytes <<<"$report")
	ROW[sent_bytes]=$(jq -r .transferred_bytes <<<"$report")
	ROW[connect_ms]=$(tool_stamp 'connected to the agent on ')
	ROW[migrate_ms]=$(tool_stamp 'migration started ')
	ROW[note]="tool wall $(((t1 - t0) / 1000000)) ms; progress lines at: connected ${ROW[connect_ms]} ms, new QEMU started on B $(tool_stamp 'new QEMU started on ') ms, migration started ${ROW[migrate_ms]} ms; new QEMU's RAM $(ram_mapping "$new" "$((SIZE * GiB))"); "
	for f in connect_ms migrate_ms; do
		[ "${ROW[$f]}" != "?" ] || ROW[$f]=
	done
	# The copy, like plain migration's "total time": from `migrate` to the guest running on B.
	[ -z "${ROW[migrate_ms]}" ] || ROW[copy_ms]=$(awk -v a="${ROW[running_ms]}" -v b="${ROW[migrate_ms]}" 'BEGIN { printf "%.1f", a - b }')
	check_after "$new" "/proc/$new/root$RUN_DIR/vm.qmp"
}

# run_migrate [memfd]: plain migration by hand; with memfd, into a destination whose RAM is a
# shared memfd.
run_migrate() {
	local out kind=${1:-}
	prepare "$SIZE" || return 1
	memwatch_start || { ROW[note]="memwatch did not start"; return 1; }
	# shellcheck disable=SC2046
	out=$(python3 "$HELPERS/rbench.py" migrate "$RUN_DIR/vm.qmp" "$VM_PID" "$RUN_DIR/dst.qmp" \
		"$RUN_DIR/dst.pid" "tcp:$B_IP:$MIG_PORT" -- ip netns exec "$NS_B" "$QEMU" \
		$(vm_args "$RUN_DIR" dst "$SIZE" "$kind") -S -incoming "tcp:$B_IP:$MIG_PORT" 2>"$RUN_DIR/mig.err")
	memwatch_stop
	local dst
	dst=$(jq -r '.dst_pid // empty' <<<"$out" 2>/dev/null)
	[ -n "$dst" ] || dst=$(jq -r '.dst_pid // empty' "$RUN_DIR/mig.err" 2>/dev/null | head -n 1)
	[ -z "$dst" ] || track "$dst"
	if [ -n "$(jq -r '.error // empty' <<<"$out" 2>/dev/null)" ] || [ -z "$out" ]; then
		ROW[note]="migration failed: $(jq -r '.error // empty' <<<"$out" 2>/dev/null) $(grep -v dst_pid "$RUN_DIR/mig.err" | tr '\n' ' ')"
		return 1
	fi
	local k
	for k in total_ms running_ms pause_ms downtime_ms; do
		ROW[$k]=$(jq -r ".$k // empty" <<<"$out")
	done
	ROW[copy_ms]=${ROW[total_ms]}
	ROW[retired_ms]=$(jq -r .src_exit_ms <<<"$out")
	ROW[ram_bytes]=$(jq -r .ram_bytes <<<"$out")
	ROW[sent_bytes]=${ROW[ram_bytes]}
	ROW[strategy]=precopy
	ROW[note]=$(jq -r '"destination start \(.dst_start_ms | floor) ms; QEMU total-time \(.qemu_total_ms) ms, setup \(.setup_ms) ms, \(.mbps | floor) Mbit/s, dirty-sync-count \(.dirty_syncs); "' <<<"$out")
	[ "$(jq -r .dst_state <<<"$out")" = running ] || ROW[note]+="destination run state $(jq -r .dst_state <<<"$out"); "
	ROW[note]+="destination RAM $(ram_mapping "$dst" "$((SIZE * GiB))"); "
	check_after "$dst" "$RUN_DIR/dst.qmp"
}

echo "remote.sh: $("$QEMU" --version | head -n 1), -accel $ACCEL, sizes ${SIZES[*]} GiB, $RUNS runs each of ${METHOD_LIST[*]}, namespaces $NS_A/$NS_B" >&2
SKIPPED=()
for SIZE in "${SIZES[@]}"; do
	need=$((2 * SIZE * GiB + MARGIN))
	# More than the machine has: no use waiting for it.
	if [ "$need" -gt "$(awk '/^MemTotal:/ { printf "%.0f\n", $2 * 1024 }' /proc/meminfo)" ] ||
		! wait_for_memory "$need"; then
		say "skipped $SIZE GiB: needs $((need / MiB)) MiB available (2 x size + 1.5 GiB), have $(($(mem_available) / MiB)) MiB"
		SKIPPED+=("$SIZE GiB (needs $((need / MiB)) MiB available, had $(($(mem_available) / MiB)) MiB)")
		continue
	fi
	for run in $(seq "$RUNS"); do
		for method in "${METHOD_LIST[@]}"; do
			if ! wait_for_memory "$need"; then
				say "skipped $method at $SIZE GiB run $run: not enough free memory"
				SKIPPED+=("$method $SIZE GiB run $run (not enough MemAvailable)")
				continue
			fi
			ROW=([size_gib]=$SIZE [method]=$method [run]=$run [loadavg]=$(cut -d' ' -f1 /proc/loadavg)
				[timestamp]=$(date +%Y-%m-%dT%H:%M:%S%z))
			RUN_DIR=$(mktemp -d /tmp/qu-rbench-run.XXXXXX)
			case $method in
			remote) run_remote tls ;;
			remote-ssh) run_remote ssh ;;
			migrate) run_migrate ;;
			migrate-memfd) run_migrate memfd ;;
			esac
			if [ $? = 0 ]; then ROW[result]=ok; else ROW[result]=failed; fi
			end_run
			settle_memory
			emit
			if [ "${ROW[result]}" = ok ]; then
				say "$(printf '%-13s %s GiB run %s: total %s ms, guest on B %s ms, pause %s ms, downtime %s ms, RAM %s MiB, extra mem %s MiB' \
					"$method" "$SIZE" "$run" "${ROW[total_ms]}" "${ROW[running_ms]}" "${ROW[pause_ms]}" \
					"${ROW[downtime_ms]}" "$((${ROW[ram_bytes]:-0} / MiB))" "$((${ROW[peak_extra_bytes]:-0} / MiB))")"
			else
				say "$method $SIZE GiB run $run failed: ${ROW[note]}"
			fi
		done
	done
done

skipped=""
[ ${#SKIPPED[@]} -eq 0 ] || skipped=$(IFS=';'; echo "${SKIPPED[*]}")
QU_ARGS=$QU_ARGS python3 "$HELPERS/rbench.py" report "$TSV" "$OUT" "$COMMAND" "$ACCEL" "$QEMU" "$skipped" ||
	die "report failed"
say "wrote $OUT"
