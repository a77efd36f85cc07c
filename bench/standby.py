"""standby.py: the parts of bench/standby.sh that time things or write the report.

    standby.py window SERIAL SECONDS MIB PING_NS ADDR
    standby.py failover PRIMARY_PID B_QMP B_SERIAL [TIMEOUT_S]
    standby.py report CSV INVOCATION OUT COMMAND QEMU_VERSION

`window`: the guest's memory-write rate and ping round trips over one window. It waits for
a fresh `MEMCHECK pass=N` line on the guest's serial log (its host time is the window's
start), starts `ping` from PING_NS to ADDR (5 a second, as many as fit in SECONDS), and once
SECONDS have passed waits for the next fresh pass line (the window's end). memcheck rewrites
its MIB MiB working set once per pass and prints a line about once a second with the number
of passes finished, so the rate is (passes at the end - passes at the start) * MIB / the time
between the two lines. The serial log is polled every 10 ms by reading what was appended (no
process started per poll: the host has 2 CPUs and the guest is on them). Prints one JSON
object.

`failover`: connects to the secondary's monitor (B_QMP) first, then SIGKILLs the primary QEMU
and polls B's monitor every 10 ms until `query-colo-status` says mode `none` and
`query-status` says `running`: the guest runs on B out of COLO (a COLO secondary runs its
vCPUs between checkpoints too, so `running` alone is no takeover). Then it waits for the
first pass line the guest prints on B's serial log after that moment. Prints one JSON object:
the times from the kill (ms), the primary's death by pidfd, B's pass line.

`report`: bench/STANDBY-RESULTS.md from the CSV rows of one invocation.
Standard library only; the QMP client is bench.py's.
"""
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import QMP, BenchError, fnum  # noqa: E402

PASS_RE = re.compile(rb"MEMCHECK pass=(\d+) errors=(\d+)")


class Serial:
    """Follows a serial log: new() returns the pass lines appended since the last call, each
    as (host time first seen, pass, errors)."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.part = b""
        self.skip_existing()

    def skip_existing(self):
        try:
            self.off = os.path.getsize(self.path)
        except OSError:
            self.off = 0
        self.part = b""

    def new(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return []
        now = time.time()
        self.off += len(data)
        data = self.part + data
        lines = data.split(b"\n")
        self.part = lines.pop()
        out = []
        for line in lines:
            m = PASS_RE.search(line)
            if m:
                out.append((now, int(m.group(1)), int(m.group(2))))
        return out

    def next_line(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.new()
            if got:
                return got[-1]
            time.sleep(0.01)
        return None


def parse_ping(text):
    r = {"sent": None, "received": None, "loss_pct": None, "avg_ms": None, "max_ms": None, "min_ms": None}
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    if m:
        r["sent"], r["received"] = int(m.group(1)), int(m.group(2))
        r["loss_pct"] = 100.0 * (r["sent"] - r["received"]) / r["sent"] if r["sent"] else None
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", text)
    if m:
        r["min_ms"], r["avg_ms"], r["max_ms"] = (float(x) for x in m.groups())
    return r


def cmd_window(serial, seconds, mib, ns, addr):
    seconds, mib = float(seconds), int(mib)
    s = Serial(serial)
    first = s.next_line(30)
    if first is None:
        raise BenchError("no MEMCHECK pass line on the serial log for 30 s")
    count = max(1, int(seconds * 5))
    # -c with -W: ping waits up to 3 s for the last replies instead of cutting them off at a
    # deadline (a reply held by colo-compare until the next checkpoint is late, not lost).
    # PINGS=0: no pings (the guest's network idle), to see what the pings themselves cost.
    ping = None
    if os.environ.get("PINGS", "1") != "0":
        ping = subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-q", "-n", "-i", "0.2", "-W", "3",
                                 "-c", str(count), addr], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    errors = first[2]
    while time.time() < first[0] + seconds:
        for line in s.new():
            errors = max(errors, line[2])
        time.sleep(0.01)
    last = s.next_line(30)
    if last is None:
        if ping:
            ping.kill()
        raise BenchError(f"no MEMCHECK pass line for 30 s after the window ({seconds} s)")
    out = ping.communicate(timeout=seconds + 30)[0] if ping else ""
    p = parse_ping(out)
    dt = last[0] - first[0]
    print(json.dumps({
        "pass0": first[1], "pass1": last[1], "window_s": round(dt, 3),
        "write_mib_s": round((last[1] - first[1]) * mib / dt, 2), "errors": max(errors, last[2]),
        "ping": p, "ping_tail": out.strip().splitlines()[-2:] if out.strip() else [],
    }))


def cmd_failover(primary, b_qmp, b_serial, timeout=60):
    primary, timeout = int(primary), float(timeout)
    q = QMP(b_qmp)
    s = Serial(b_serial)
    pidfd = os.pidfd_open(primary)
    r = {}
    t0 = time.time()
    os.kill(primary, signal.SIGKILL)
    import select
    end = time.monotonic() + timeout
    while True:
        if "primary_dead_ms" not in r and select.select([pidfd], [], [], 0)[0]:
            r["primary_dead_ms"] = round((time.time() - t0) * 1000, 1)
        try:
            mode = q.cmd("query-colo-status", timeout=5)["mode"]
            st = q.cmd("query-status", timeout=5)["status"]
        except BenchError as e:
            raise BenchError(f"B's monitor: {e}")
        if mode == "none" and st == "running":
            r["running_on_b_ms"] = round((time.time() - t0) * 1000, 1)
            break
        if time.monotonic() > end:
            raise BenchError(f"the guest did not run on B within {timeout} s (mode {mode}, status {st})")
        time.sleep(0.01)
    t_run = time.time()
    s.new()  # what B printed up to its takeover (in COLO, or before the poll saw it) is not counted
    line = s.next_line(30)
    if line is not None:
        r["first_pass_line_on_b_ms"] = round((line[0] - t0) * 1000, 1)
        r["b_pass"], r["b_errors"] = line[1], line[2]
    r["poll_gap_ms"] = round((time.time() - t_run) * 1000, 1)
    q.close()
    print(json.dumps(r))


# The report.

def vals(rows, key, scale=1.0):
    out = []
    for r in rows:
        v = r.get(key, "")
        if v not in ("", None):
            try:
                out.append(float(v) / scale)
            except ValueError:
                pass
    return out


def med(rows, key, scale=1.0):
    v = vals(rows, key, scale)
    return statistics.median(v) if v else None


def cell(rows, key, scale=1.0, unit=""):
    v = vals(rows, key, scale)
    if not v:
        return "n/a"
    m = statistics.median(v)
    return f"{fnum(m)}{unit}" + (f" ({fnum(min(v))}–{fnum(max(v))})" if len(v) > 1 else "")


def cmd_report(path, invocation, out, command, qemu_version):
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["invocation"] == invocation]
    ok = [r for r in rows if r["result"] == "ok"]
    configs = sorted({(int(r["size_mib"]), int(r["interval_ms"])) for r in rows})
    stamps = sorted(r["timestamp"] for r in rows)
    loads = vals(rows, "load1_start") + vals(rows, "load1_end")
    o = ["# Hot standby (`qemu-upgrade standby`): what protection costs the guest, and failover\n"]
    o.append(f"- Command: `{command}`")
    o.append(f"- Date: runs from {stamps[0] if stamps else '?'} to {stamps[-1] if stamps else '?'}; "
             f"report written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    o.append(f"- QEMU: {qemu_version} (Debian sid, `tests/qemu-versions/fetch.sh sid`), the same binary on "
             "both \"hosts\"")
    o.append("- Accelerator: **TCG** (`-accel tcg`, tests/lib/vm.sh's guest; this machine's /dev/kvm is "
             "nested PVM, on which the guest kernel does not run)")
    o.append(f"- Machine: {os.cpu_count()} CPUs, kernel {os.uname().release}. **Shared**: other helpers ran "
             "e2e test suites on the same 2 cores during these runs; the 1-minute load average was "
             + (f"{fnum(min(loads))}–{fnum(max(loads))}" if loads else "?")
             + " (each run's `/proc/loadavg` at its start and end is in `bench/standby.csv`). Single runs "
             "vary by tens of percent.")
    o.append("- Hosts: network namespaces A (10.77.0.1) and B (10.77.0.2) joined by a veth, the TLS "
             "agent on B (`qemu-upgrade agent --listen`), as tests/e2e/standby-protect.t. Guest: "
             "tests/lib/vm.sh's (Debian cloud kernel, busybox, `memcheck`), 1 vCPU, q35, RAM a shared "
             "memfd on A (private RAM on B), one virtio-net on a tap (`vhost=off,vnet_hdr=off`), no disk; "
             "a fresh VM per run")
    mibs = sorted({r["memcheck_mib"] for r in rows})
    wins = sorted({r["window_s"] for r in rows})
    o.append(f"- Workload: memcheck rewrites a working set of {', '.join(mibs)} MiB over and over (read, "
             "check, write every word); write rate = passes finished in the window x working set / the "
             "window's length, timed on the host from the guest's pass lines (one a second; ±1 pass at "
             "each end). Pings: `ping -i 0.2` from A's host side of the tap to the guest during the same "
             f"window ({', '.join(wins)} s).")
    o.append("- Each run, one after the other on the same VM: **unprotected** window; `qemu-upgrade standby "
             "start --interval MS` (returns once protected), 2 checkpoints, **protected** window (pings "
             "through `colo-compare`); `standby status --json`; the secondary's RSS on B; **failover**: "
             "SIGKILL of the primary QEMU, then B's monitor polled every 10 ms until `query-colo-status` "
             "is `none` and `query-status` `running` (the guest runs on B out of COLO); everything "
             "killed by PID")
    o.append("")
    o.append("Medians of the runs measured (min–max in parentheses).\n")
    o.append("| guest | interval | runs | write rate unprotected | write rate protected | protected / unprotected "
             "| ping avg unprot. | ping avg prot. | ping max unprot. | ping max prot. | ping loss unprot. | ping loss prot. |")
    o.append("|" + " --- |" * 12)
    for size, iv in configs:
        rs = [r for r in ok if int(r["size_mib"]) == size and int(r["interval_ms"]) == iv]
        # Each run's own ratio (its two windows were a minute apart on the same VM), then their
        # median: other jobs' load moves whole runs up and down.
        for r in rs:
            if r.get("base_write_mib_s") and r.get("prot_write_mib_s"):
                r["write_ratio"] = float(r["prot_write_mib_s"]) / float(r["base_write_mib_s"])
        o.append(f"| {size} MiB | {iv} ms | {len(rs)} | {cell(rs, 'base_write_mib_s', unit=' MiB/s')} | "
                 f"{cell(rs, 'prot_write_mib_s', unit=' MiB/s')} | {cell(rs, 'write_ratio', unit='x')} | "
                 f"{cell(rs, 'base_ping_avg_ms', unit=' ms')} | {cell(rs, 'prot_ping_avg_ms', unit=' ms')} | "
                 f"{cell(rs, 'base_ping_max_ms', unit=' ms')} | {cell(rs, 'prot_ping_max_ms', unit=' ms')} | "
                 f"{cell(rs, 'base_ping_loss_pct', unit=' %')} | {cell(rs, 'prot_ping_loss_pct', unit=' %')} |")
    o.append("")
    o.append("| guest | interval | checkpoints / s (window) | pause per checkpoint, median | pause, max | "
             "sent per checkpoint | initial pause | `standby start` took | secondary's RSS on B | "
             "failover: kill → guest runs on B | kill → primary gone (pidfd) | kill → its first pass line on B |")
    o.append("|" + " --- |" * 12)
    for size, iv in configs:
        rs = [r for r in ok if int(r["size_mib"]) == size and int(r["interval_ms"]) == iv]
        o.append(f"| {size} MiB | {iv} ms | {cell(rs, 'ckpt_per_s')} | {cell(rs, 'pause_median_ms', unit=' ms')} | "
                 f"{cell(rs, 'pause_max_ms', unit=' ms')} | "
                 f"{cell(rs, 'ckpt_veth_bytes', 1 << 20, ' MiB')} | "
                 f"{cell(rs, 'initial_pause_ms', unit=' ms')} | {cell(rs, 'start_ms', 1000, ' s')} | "
                 f"{cell(rs, 'secondary_rss_bytes', 1 << 20, ' MiB')} | {cell(rs, 'failover_ms', unit=' ms')} | "
                 f"{cell(rs, 'primary_dead_ms', unit=' ms')} | "
                 f"{cell(rs, 'failover_line_ms', unit=' ms')} |")
    o.append("")
    o.append("- **write rate**: MiB the guest rewrote per second. Protected / unprotected is the share of "
             "its throughput the guest keeps under protection: each run's protected rate over its own "
             "unprotected one (the same VM, a minute earlier), then the median of those ratios.")
    o.append("- **pause per checkpoint**: `standby status --json`'s `pause_median_ms` and `pause_max_ms` "
             "(the primary's STOP to RESUME events, over every checkpoint of the run: the protected window and "
             "the time around it; the state file is rewritten once a second). **checkpoints / s**: those "
             "taken during the protected window over its length; with pauses longer than the interval "
             "there are fewer than 1000 / interval. The direct measure of the time the guest lost is the "
             "write rate's ratio above.")
    o.append("- **sent per checkpoint**: the bytes A sent B over the veth during the protected window "
             "(the checkpoints' migration stream under QEMU's TLS, plus the packets filter-mirror copies "
             "and the supervisor's heartbeats) over the checkpoints taken in it; QEMU 11.1's "
             "`query-migrate` has no RAM counters while in COLO.")
    o.append("- **initial pause**: `initial_pause_ms`, once, at `standby start` (the end of the initial copy "
             "made with the guest stopped). **`standby start` took**: the command's wall time, initial copy "
             "included.")
    o.append("- **secondary's RSS on B**: `VmRSS` of B's QEMU at the end of the protected window (its private "
             "copy of the guest RAM, as far as the guest touched it, plus QEMU's own).")
    o.append("- **failover**: from the SIGKILL of the primary QEMU (sent by the bench) until B's monitor "
             "answers `query-colo-status` mode `none` and `query-status` `running`, polled every 10 ms "
             "over one connection opened before the kill; it includes the supervisor seeing the death, "
             "its `op=failover` to the agent, `x-colo-lost-heartbeat` on B and the poll's own round trip. **primary gone**: when the "
             "killed QEMU's pidfd became readable (the process fully exited, its address space torn "
             "down: the supervisor takes its monitor's end for the primary's death only once the pidfd "
             "confirms it, upgrade/standby-run.c, so the failover includes this; the 2 GiB rows of "
             "2026-12-04 21:1x were measured with a faster check, since taken back: docs/standby.md). "
             "**first pass line**: the first `MEMCHECK pass=` line the guest printed on B's serial after "
             "that (it prints one about a second, so this adds up to a second of the guest's own timing).")
    bad = [r for r in rows if r["result"] != "ok"]
    for r in bad:
        o.append(f"- {r['size_mib']} MiB, {r['interval_ms']} ms, run {r['run']}: **{r['result']}**: {r['note']}")
    o.append("")
    o.append("## Runs\n")
    cols = ["size_mib", "interval_ms", "run", "result", "base_write_mib_s", "prot_write_mib_s", "base_ping_avg_ms",
            "prot_ping_avg_ms", "prot_ping_max_ms", "prot_ping_loss_pct", "checkpoints_window", "ckpt_veth_bytes", "pause_median_ms",
            "pause_max_ms", "initial_pause_ms", "failover_ms", "failover_line_ms", "b_errors", "loadavg_start"]
    o.append("| " + " | ".join(cols) + " |")
    o.append("|" + " --- |" * len(cols))
    for r in rows:
        o.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    with open(out, "w") as f:
        f.write("\n".join(o) + "\n")


if __name__ == "__main__":
    try:
        cmd = sys.argv[1]
        if cmd == "window":
            cmd_window(*sys.argv[2:7])
        elif cmd == "failover":
            cmd_failover(*sys.argv[2:6])
        elif cmd == "report":
            cmd_report(*sys.argv[2:7])
        else:
            raise BenchError(f"unknown command {cmd}")
    except (BenchError, OSError, subprocess.SubprocessError) as e:
        print(json.dumps({"error": str(e)}))
        sys.exit(1)
