"""bench.py: one benchmark run (qemu-upgrade in place, by postcopy with --low-memory, by
   precopy, or plain localhost migration), and the report.

    bench.py probe-accel --qemu Q --workdir DIR
    bench.py run --method upgrade|lowmem|precopy|migrate --size-gib N --run K --accel A --qemu Q
                 --tool QU --helpers DIR --csv FILE
    bench.py report --csv FILE --out RESULTS.md --command "..." --accel A --qemu Q

`run` starts the VM(s) in a fresh directory under /tmp, fills guest RAM, measures one
operation, checks the result (run state, RAM contents), kills every process it started
by PID and appends one row to the CSV. Exit status: 0 measured, 3 skipped (not enough
free memory), 1 failed (the row says why). Standard library only; QMP over UNIX sockets.
"""
import argparse
import csv
import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

GiB = 1 << 30
MiB = 1 << 20
MAX_BANDWIDTH = 1 << 40          # bytes/s for migrate-set-parameters (1 TiB/s: unlimited)
MARGIN = 3 * GiB // 2            # free memory kept on top of what a run needs

CSV_FIELDS = [
    "size_gib", "method", "run", "result", "downtime_ms", "pause_ms", "total_ms", "running_ms",
    "retired_ms", "wall_ms", "ram_transferred_bytes", "stream_bytes", "peak_extra_mem_bytes",
    "peak_extra_held_bytes", "peak_extra_qemus_bytes", "peak_extra_free_bytes", "pcp_growth_bytes", "reported_extra_mem_bytes",
    "mem_samples", "mem_max_gap_ms", "fill_s", "wait_s", "verify_bad_pages", "loadavg", "accel",
    "timestamp", "tool_build", "note",
]


# --method -> the name in the CSV and the report, in the report's column order
METHOD_NAMES = {"upgrade": "qemu-upgrade", "migrate": "plain-migration",
                "precopy": "qemu-upgrade-precopy", "lowmem": "qemu-upgrade-lowmem",
                "sparse": "qemu-upgrade-sparse", "hugetlb": "qemu-upgrade-hugetlb",
                "hugedir": "qemu-upgrade-hugedir"}
# The report's column order and headings (by the name in the CSV).
METHOD_ORDER = ["qemu-upgrade", "qemu-upgrade-sparse", "qemu-upgrade-hugetlb",
                "qemu-upgrade-hugedir", "qemu-upgrade-lowmem", "qemu-upgrade-precopy",
                "plain-migration"]
METHOD_HEADS = {"qemu-upgrade": "qemu-upgrade (in place)",
                "qemu-upgrade-sparse": "in place, sparse (not filled)",
                "qemu-upgrade-hugetlb": "in place, hugetlb memfd (2 MiB)",
                "qemu-upgrade-hugedir": "in place, hugetlbfs mem-path dir (2 MiB)",
                "qemu-upgrade-lowmem": "qemu-upgrade (low-memory)",
                "qemu-upgrade-precopy": "qemu-upgrade (precopy)",
                "plain-migration": "plain migration"}
# What each qemu-upgrade method passes, and the strategy its report must name.
UPGRADE_FLAGS = {"upgrade": [], "precopy": ["--allow-copy"], "lowmem": ["--low-memory"],
                 "sparse": [], "hugetlb": [], "hugedir": []}
UPGRADE_STRATEGY = {"upgrade": "shared-ram-handover", "precopy": "precopy",
                    "lowmem": "postcopy", "sparse": "shared-ram-handover",
                    "hugetlb": "shared-ram-handover", "hugedir": "shared-ram-handover"}
# The in-place methods (guest RAM shared, handed over, nothing copied).
IN_PLACE = ("upgrade", "sparse", "hugetlb", "hugedir")
HUGE = ("hugetlb", "hugedir")
HUGEPAGE = 2 * MiB
NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
# sparse: the part of guest RAM written and checked (at the middle, away from the firmware).
SPARSE_WINDOW = 64 * MiB


class BenchError(Exception):
    pass


class Skip(Exception):
    pass


# --------------------------------------------------------------------------- processes

class Proc:
    """A process we started, held by a pidfd: immune to PID reuse, and readable only once
    every thread has exited (a daemonized QEMU's main thread can be a zombie while
    another thread still tears down gigabytes of guest RAM mappings)."""

    def __init__(self, pid):
        self.pid = pid
        try:
            self.fd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise BenchError(f"process {pid} is gone")

    def exited(self, timeout=0.0):
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        return bool(p.poll(timeout * 1000))

    def signal(self, sig):
        try:
            signal.pidfd_send_signal(self.fd, sig)
        except ProcessLookupError:
            pass

    def close(self):
        os.close(self.fd)


class Tracker:
    """Every process a run starts, killed by PID (via its pidfd, never by name) when the
    run ends."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []
        self.after = []   # run by cmd_run once every process is gone (unmount, give back)

    def track(self, pid):
        p = Proc(pid)
        self.procs.append(p)
        return p

    @staticmethod
    def kill(p):
        if p.exited():
            return
        p.signal(signal.SIGTERM)
        if not p.exited(5):
            p.signal(signal.SIGKILL)
            p.exited(10)

    def strays(self):
        """Processes whose command line names this run's private directory: a QEMU the
        upgrade started whose PID we never learned (the directory is unique to the run)."""
        found = []
        me = os.getpid()
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == me:
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if self.workdir.encode() + b"/" in cmd:
                try:
                    found.append(Proc(int(d)))
                except BenchError:
                    pass
        return found

    def cleanup(self):
        for p in self.procs + self.strays():
            self.kill(p)
            p.close()
        self.procs = []


# --------------------------------------------------------------------------- QMP

class QMP:
    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.events = []
        greeting = self._read(timeout)
        if "QMP" not in greeting:
            raise BenchError(f"no QMP greeting on {path}")
        self.cmd("qmp_capabilities")

    def _read(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise BenchError("QMP timeout")
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                data = self.sock.recv(65536)
                if not data:
                    raise BenchError("QMP connection closed")
                self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def _pump(self, timeout):
        msg = self._read(timeout)
        if "event" in msg:
            ts = msg.get("timestamp", {})
            msg["ts"] = ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6
            self.events.append(msg)
        return msg

    def cmd(self, execute, timeout=30, **args):
        req = {"execute": execute}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        end = time.monotonic() + timeout
        while True:
            msg = self._pump(max(0.001, end - time.monotonic()))
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise BenchError(f"QMP {execute}: {msg['error'].get('desc')}")

    def wait_event(self, pred, timeout):
        end = time.monotonic() + timeout
        while True:
            for e in self.events:
                if pred(e):
                    return e
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                self._pump(left)
            except BenchError as e:
                if "timeout" in str(e):
                    return None
                raise

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def runstate(qmp_path):
    q = QMP(qmp_path)
    try:
        return q.cmd("query-status")["status"]
    finally:
        q.close()


# --------------------------------------------------------------------------- helpers

def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise BenchError("no MemAvailable in /proc/meminfo")


def wait_for_memory(need, what, timeout=60):
    """Memory freed by the previous run (an 8 GiB memfd) can take a second or more to show
    up in MemAvailable: wait up to timeout for need bytes."""
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    if need > total:
        # Waiting cannot help: say so at once (a 64 GiB filled guest on a 24 GiB host).
        raise Skip(f"needs {need / GiB:.1f} GiB available ({what}), more than this host's "
                   f"MemTotal {total / GiB:.1f} GiB")
    end = time.monotonic() + timeout
    while mem_available() < need:
        if time.monotonic() > end:
            raise Skip(f"needs {need / GiB:.1f} GiB available ({what}), "
                       f"have {mem_available() / GiB:.1f} GiB after waiting {timeout} s")
        time.sleep(0.25)


def settle_memory(timeout=30):
    """After a run: until MemAvailable stops rising (the freed guest RAM is back)."""
    end = time.monotonic() + timeout
    last = mem_available()
    while time.monotonic() < end:
        time.sleep(0.5)
        now = mem_available()
        if now - last < 32 * MiB:
            return
        last = now


def skip_ranges(size):
    """Guest RAM the idle SeaBIOS guest uses, left out of the fill: the first MiB, and
    the last 32 MiB below the top of low memory (its tables and high zone). q35 in QEMU
    7.2 maps min(RAM, 2 GiB if RAM >= 2.75 GiB else 2.75 GiB) below 4 GiB."""
    lowmem = 0x80000000 if size >= 0xB0000000 else 0xB0000000
    below4g = min(size, lowmem)
    return f"0-0x100000,{below4g - 32 * MiB:#x}-{below4g:#x}"


def progress_ms(stderr, marker):
    """The time stamp of qemu-upgrade's progress line that contains marker:
    '[  190.2 ms] new QEMU PID 9774 runs the guest (commit point)' -> '190.2'."""
    for line in stderr.splitlines():
        if marker in line and line.startswith("[") and " ms]" in line:
            return line[1:line.index(" ms]")].strip()
    return ""


class MemWatch:
    """bench/memwatch: baseline MemAvailable (median over 250 ms), then its minimum; and the
    same for AnonPages + Shmem (its maximum)."""

    def __init__(self, helpers):
        self.p = subprocess.Popen([os.path.join(helpers, "memwatch"), "5000"],
                                  stdout=subprocess.PIPE, text=True)
        if self.p.stdout.readline().strip() != "ready":
            raise BenchError("memwatch did not start")

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        out, _ = self.p.communicate(timeout=10)
        r = dict(kv.split("=") for kv in out.split())
        return {k: int(v) for k, v in r.items()}

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def free_fields(mem):
    """The CSV fields from memwatch's "free" numbers (MemFree + the per-CPU free lists): its
    peak drop, and how much the per-CPU lists had grown at the lowest MemAvailable ("" when
    /proc/zoneinfo could not be read)."""
    if mem.get("free_baseline_kb", -1) < 0:
        return {"peak_extra_free_bytes": "", "pcp_growth_bytes": ""}
    return {"peak_extra_free_bytes": mem["free_extra_kb"] * 1024,
            "pcp_growth_bytes": (mem["pcp_at_min_kb"] - mem["pcp_baseline_kb"]) * 1024
            if mem.get("pcp_at_min_kb", -1) >= 0 else ""}


def start_qemu(qemu, accel, size_gib, memfd, workdir, name, extra=(), backend=None):
    """memfd: RAM in memory-backend-memfd,share=on; backend: that -object instead (its id
    mem0); neither: anonymous RAM (plain -m)."""
    size = f"{size_gib}G"
    if backend:
        mem = ["-machine", "q35,memory-backend=mem0", "-object", backend]
    elif memfd:
        mem = ["-machine", "q35,memory-backend=mem0",
               "-object", f"memory-backend-memfd,id=mem0,size={size},share=on"]
    else:
        mem = ["-machine", "q35"]
    argv = [qemu, "-accel", accel, *mem, "-m", size, "-nodefaults", "-display", "none",
            "-qmp", f"unix:{workdir}/{name}.qmp,server=on,wait=off",
            "-daemonize", "-pidfile", f"{workdir}/{name}.pid", *extra]
    with open(f"{workdir}/{name}.err", "w") as err:
        rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err).returncode
    if rc != 0:
        with open(f"{workdir}/{name}.err") as err:
            raise BenchError(f"{name} QEMU failed to start: {err.read().strip()}")
    with open(f"{workdir}/{name}.pid") as f:
        return int(f.read().strip()), f"{workdir}/{name}.qmp"


def ram_mapping(pid, size):
    """What backs a QEMU's guest RAM: the name of its mapping of exactly size bytes
    ('anonymous' if it has none)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if hi - lo == size:
                    name = parts[5].strip() if len(parts) > 5 else ""
                    return (name.replace(" (deleted)", "") or "anonymous") + \
                        (" shared" if parts[1][3] == "s" else "")
    except OSError:
        pass
    return "unknown"


def proc_mem(pid):
    """A process's memory from /proc/PID/smaps_rollup, bytes by field (Rss, Anonymous,
    AnonHugePages, Shmem, ...); {} if it is gone."""
    r = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    r[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        pass
    return r


def proc_status_kb(pid, keys=("RssAnon", "RssShmem", "HugetlbPages")):
    """Those counters of /proc/PID/status, kB ({} if it is gone)."""
    r = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in keys:
                    r[k] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return r


def proc_held(pid):
    """RssAnon + RssShmem of a process from /proc/PID/status (cheap counters), bytes; None if
    it is gone."""
    anon = shmem = None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                elif line.startswith("RssShmem:"):
                    shmem = int(line.split()[1]) * 1024
    except OSError:
        return None
    return (anon or 0) + (shmem or 0) if anon is not None else None


THP_STATS = "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/stats/"


def thp_count(name):
    """A host-wide count of 2 MiB anonymous transparent huge pages from THP_STATS (nr_anon,
    nr_anon_partially_mapped: kernel 6.12 and later); None if the kernel has no such file."""
    try:
        with open(THP_STATS + name) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class ProcWatch:
    """Where a copy's host memory sits (the methods that copy: lowmem, precopy, migrate; not
    the in-place handover, where both QEMUs map the same pages): a thread that
    every 10 ms reads the old and the new QEMU's RssAnon + RssShmem (/proc/PID/status; the
    new QEMU is found by its command line, which names the run's private directory) and the
    host's count of partially mapped 2 MiB anonymous huge pages (release-ram discards 4 KiB
    pieces of the old QEMU's huge pages: such a page's memory is freed only with its last
    piece, while AnonPages and RSS already drop with each piece). It keeps the sample with
    the largest RSS sum (the two QEMUs' part of the held peak), the most partially mapped
    huge pages, and how long the old QEMU still held more than 10% of its starting RSS. With
    QU_BENCH_TRACE set to a directory it also writes the timeline there (one CSV per run)."""

    def __init__(self, workdir, old_pid):
        import threading
        self.workdir, self.old, self.new = workdir, old_pid, None
        self.stop_ev = threading.Event()
        self.old0 = proc_held(old_pid) or 0
        self.part0 = thp_count("nr_anon_partially_mapped")
        self.part_max = self.part0
        self.best = None          # (sum, t_ms, old, new)
        self.trace = []
        self.t0 = time.monotonic()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _find_new(self):
        key = self.workdir.encode() + b"/"
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) in (self.old, os.getpid()):
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if key in cmd and b"qemu-system" in cmd.split(b"\0", 1)[0]:
                return int(d)
        return None

    def _run(self):
        n = 0
        while not self.stop_ev.wait(0.01):
            n += 1
            t = (time.monotonic() - self.t0) * 1000
            if self.new is None and n % 2 == 0:
                self.new = self._find_new()
            o = proc_held(self.old)
            nw = proc_held(self.new) if self.new else None
            if self.new and nw is None:
                # Gone: the parent of a QEMU that daemonizes (plain migration's destination)
                # has the same command line as the QEMU that stays. Look again.
                self.new = None
            part = thp_count("nr_anon_partially_mapped") if self.part0 is not None else None
            if part is not None and part > self.part_max:
                self.part_max = part
            self.trace.append((t, o, nw, part))
            total = (o or 0) + (nw or 0)
            if self.best is None or total > self.best[0]:
                self.best = (total, t, o or 0, nw or 0)

    def stop(self):
        self.stop_ev.set()
        self.th.join(5)
        d = os.environ.get("QU_BENCH_TRACE")
        if d:
            name = os.path.join(d, os.path.basename(self.workdir.rstrip("/")) + ".csv")
            with open(name, "w") as f:
                f.write("t_ms,old_held,new_held,thp_partially_mapped\n")
                for t, o, nw, part in self.trace:
                    f.write(f"{t:.1f},{'' if o is None else o},{'' if nw is None else nw},"
                            f"{'' if part is None else part}\n")
        if not self.best:
            return "", ""
        total, t, o, nw = self.best
        # How long the old QEMU held more than 10% of what it held at the start.
        tail = [s[0] for s in self.trace if s[1] is not None and s[1] > self.old0 / 10]
        out = (f"QEMUs' held peak {(total - self.old0) / MiB:+.0f} MiB at {t:.0f} ms "
               f"(old {o / MiB:.0f} MiB, new {nw / MiB:.0f} MiB); old QEMU above 10% of its "
               f"{self.old0 / MiB:.0f} MiB until {(tail[-1] if tail else 0):.0f} ms")
        if self.part0 is not None:
            out += (f"; partially mapped huge pages at most {self.part_max} "
                    f"({self.part_max - self.part0:+d}, {2 * (self.part_max - self.part0)} "
                    "MiB)")
        return out, total - self.old0


def cold_wait_s(a):
    """--cold-wait, or by default 10 s + 3 s per GiB of guest RAM; 10 s for a sparse guest
    (it writes 64 MiB) and for huge pages (the pool's pages stay reserved: nothing is
    reported to the hypervisor, and the handover allocates no guest RAM)."""
    if a.cold_wait is not None:
        return a.cold_wait
    return 10 if a.method in ("sparse",) + HUGE else 10 + 3 * a.size_gib


def quiesce(a, row):
    """Between the fill and the measured operation: let the host hand the memory that the
    previous run freed back to its hypervisor, so that every run's new QEMU gets the same
    (cold) memory. The host this was written on is a VM with virtio-balloon free page
    reporting: a few seconds after memory is freed it is reported and dropped by the
    hypervisor, and touching it again costs a fault there (4 GiB: 0.2 s right after the
    free, 2.2 s once reported). Without the wait a copy into memory the previous run had
    just freed is several times faster than one into memory idle for longer, so the result
    depends on which method ran before (see README.md, Caveats)."""
    w = max(0.5, cold_wait_s(a))
    time.sleep(w)
    row["wait_s"] = f"{w:g}"
    # The load when the measured operation starts (the machine is shared).
    row["loadavg"] = f"{os.getloadavg()[0]:.2f}"


class HugePages:
    """Reserves 2 MiB huge pages for one run (vm.nr_hugepages raised by what the guest
    needs) and gives them back afterwards (lowered by as many as it added: the value it
    had, unless another program changed it meanwhile, whose change stays). What is added
    is also written to HELPERS/hugepages-added, from which run.sh gives them back if this
    process dies. Skip when the kernel cannot find that many (fragmented memory, or no
    hugetlbfs)."""

    # The machine's huge-page lock, which the tests take too (tests/lib/vm.sh,
    # vm_hugepages_add): held while this run's pages are in the pool, so that a test that
    # takes the pool's free pages on purpose, or sets a count of its own, waits for it.
    LOCK = "/run/lock/qemu-upgrade-hugepages.lock"
    LOCK_WAIT_S = 900

    def __init__(self, pages, helpers):
        self.added = 0
        self.lock = None
        self.note = os.path.join(helpers, "hugepages-added")
        try:
            before = self.get()
        except (OSError, ValueError) as e:
            raise Skip(f"no huge pages on this host ({NR_HUGEPAGES}: {e})")
        self.take_lock()
        before = self.get()
        with open(self.note, "w") as f:
            f.write(str(pages))
        self.set(before + pages)
        self.added = self.get() - before
        with open(self.note, "w") as f:
            f.write(str(self.added))
        if self.added < pages:
            got = self.added
            self.release()
            raise Skip(f"could reserve only {got} of the {pages} 2 MiB huge pages the guest "
                       f"needs ({NR_HUGEPAGES} was {before}; given back)")

    @staticmethod
    def get():
        with open(NR_HUGEPAGES) as f:
            return int(f.read())

    @staticmethod
    def set(n):
        with open(NR_HUGEPAGES, "w") as f:
            f.write(str(max(n, 0)))

    def take_lock(self):
        self.lock = open(self.LOCK, "a")
        deadline = time.monotonic() + self.LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.lock.close()
                    self.lock = None
                    raise Skip(f"the machine's huge-page lock {self.LOCK} stayed held for "
                               f"{self.LOCK_WAIT_S} s (a test or another bench holds the pool)")
                time.sleep(0.5)

    def release(self):
        if self.added:
            # Pages still in use (a QEMU not yet gone) become surplus and are freed with it.
            self.set(self.get() - self.added)
            self.added = 0
        try:
            os.unlink(self.note)
        except FileNotFoundError:
            pass
        if self.lock:
            self.lock.close()  # the flock goes with it
            self.lock = None


def mount_hugetlbfs(workdir):
    d = os.path.join(workdir, "huge")
    os.mkdir(d, 0o700)
    p = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", d],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise Skip(f"cannot mount hugetlbfs on {d}: {p.stderr.strip()}")
    return d


def umount(d):
    """The old QEMU's mappings may outlive its exit notice by a moment (its address space is
    torn down by whoever drops the last reference): retry, then detach lazily."""
    for _ in range(50):
        if subprocess.run(["umount", d], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    subprocess.run(["umount", "-l", d], check=True)


def sparse_skip(size):
    """Everything but SPARSE_WINDOW bytes at the middle of guest RAM (in fill-ram's SKIP
    form): a sparse guest is written and checked only there."""
    mid = (size // 2) & ~(HUGEPAGE - 1)
    return f"0-{mid:#x},{mid + SPARSE_WINDOW:#x}-{size:#x}"


def fill(helpers, pid, size, seed, skip=None):
    out = subprocess.run([os.path.join(helpers, "fill-ram"), "fill", str(pid), str(size),
                          str(seed), skip or skip_ranges(size)], capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"fill-ram fill: {out.stderr.strip()}")
    r = dict(kv.split("=") for kv in out.stdout.split())
    return float(r["seconds"])


def verify(helpers, pid, size, seed, skip=None):
    out = subprocess.run([os.path.join(helpers, "fill-ram"), "verify", str(pid), str(size),
                          str(seed), skip or skip_ranges(size)], capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise BenchError(f"fill-ram verify: {out.stderr.strip()}")
    r = dict(kv.split("=") for kv in out.stdout.split())
    return int(r["bad_pages"])


# --------------------------------------------------------------------------- the methods

def run_upgrade(a, t, row, method="upgrade"):
    """qemu-upgrade --pid PID --new-binary QEMU --json [--allow-copy | --low-memory].
    upgrade: RAM in memory-backend-memfd,share=on, handed over in place (strategy
    shared-ram-handover); precopy: the plain-migration VM (anonymous -m RAM), which
    qemu-upgrade copies with QEMU's precopy over its socketpair (strategy precopy, with
    --allow-copy); lowmem: the same anonymous-RAM VM, copied by QEMU's postcopy with
    release-ram (strategy postcopy, with --low-memory): the old QEMU frees each page once
    sent, so the host should need little more than one copy."""
    size = a.size_gib * GiB
    copy = method not in IN_PLACE
    backend, skip = None, None
    if method == "precopy":
        # Old and new QEMU both hold the whole RAM at the peak, as in plain migration.
        wait_for_memory(2 * size + MARGIN, "2 x guest RAM + 1.5 GiB")
    elif method == "sparse":
        # The memfd is as big as the guest, but only the firmware and the window are touched.
        wait_for_memory(SPARSE_WINDOW + MARGIN, "64 MiB + 1.5 GiB")
        skip = sparse_skip(size)
    else:
        # In place, and postcopy with release-ram (what the new QEMU gets, the old frees).
        wait_for_memory(size + MARGIN, "guest RAM + 1.5 GiB")
    if method in HUGE:
        # Given back by cmd_run once the QEMUs are gone (a page in use cannot be freed).
        hp = HugePages(size // HUGEPAGE, a.helpers)
        t.after.append(hp.release)
        if method == "hugetlb":
            backend = (f"memory-backend-memfd,id=mem0,size={a.size_gib}G,share=on,hugetlb=on,"
                       "hugetlbsize=2M")
        else:
            d = mount_hugetlbfs(t.workdir)
            t.after.insert(0, lambda: umount(d))
            backend = f"memory-backend-file,id=mem0,size={a.size_gib}G,share=on,mem-path={d}"
    pid, qmp = start_qemu(a.qemu, a.accel, a.size_gib, not copy, t.workdir, "vm",
                          backend=backend)
    old = t.track(pid)
    seed = int(time.time() * 1000) & 0xFFFFFFFF
    row["fill_s"] = f"{fill(a.helpers, pid, size, seed, skip):.2f}"
    held_before = proc_status_kb(pid)
    quiesce(a, row)
    st = runstate(qmp)
    if st != "running":
        raise BenchError(f"guest not running after the fill: {st}")
    # What the old QEMU holds just before: with THP its anonymous guest RAM is in 2 MiB
    # pages, which release-ram frees 4 KiB at a time.
    before = proc_mem(pid) if copy else {}

    mw = MemWatch(a.helpers)
    try:
        t0 = time.monotonic()
        # --json without --quiet: the same JSON on stdout, and the progress lines on stderr
        # give the time of the commit point (the new QEMU runs the guest) and of the old
        # QEMU's exit.
        # The copy path runs only on request (--allow-copy, --low-memory); the in-place
        # handover must not need it (without the flag a VM whose RAM would be copied is
        # refused).
        pw = ProcWatch(t.workdir, pid) if copy else None
        # QU_BENCH_PHASES=DIR: the tool's debug log (-v -v: each phase and QMP exchange,
        # time-stamped) kept there, one file per run, to see where each phase's time goes.
        phases = os.environ.get("QU_BENCH_PHASES")
        try:
            p = subprocess.run([a.tool, "--pid", str(pid), "--new-binary", a.qemu, "--json",
                                *(["-v", "-v"] if phases else []), *UPGRADE_FLAGS[method]],
                               capture_output=True, text=True, timeout=600)
            if phases:
                name = f"{METHOD_NAMES[method]}-{a.size_gib}g-run{a.run}"
                with open(os.path.join(phases, name + ".err"), "w") as f:
                    f.write(p.stderr)
                with open(os.path.join(phases, name + ".json"), "w") as f:
                    f.write(p.stdout)
        finally:
            procs, qemus_extra = pw.stop() if pw else ("", "")
        wall = (time.monotonic() - t0) * 1000
        # The tool returns once it has killed the old QEMU of a handover (after a copy, once
        # it has exited): its exit is timed here, by its pidfd.
        exited = old.exited(30)
        gone_ms = (time.monotonic() - t0) * 1000
        mem = mw.stop()
    finally:
        mw.kill()
    try:
        rep = json.loads(p.stdout)
    except ValueError:
        raise BenchError(f"qemu-upgrade exit {p.returncode}, no JSON: "
                         f"{(p.stdout + p.stderr).strip()[:400]}")
    if rep.get("new_pid"):
        t.track(rep["new_pid"])
    if p.returncode != 0 or rep.get("result") != "upgraded":
        raise BenchError(f"qemu-upgrade exit {p.returncode}, result {rep.get('result')}, "
                         f"strategy {rep.get('strategy')}: "
                         f"{rep.get('error') or rep.get('refusal') or p.stderr.strip()}")
    want = UPGRADE_STRATEGY[method]
    notes = []
    if rep.get("strategy") != want:
        notes.append(f"strategy {rep.get('strategy')}, expected {want}")
    # Until the new QEMU runs the guest: the report's commit_ms (older builds: the commit
    # point's progress line).
    running = rep.get("commit_ms")
    running = f"{running:.1f}" if running else progress_ms(p.stderr,
                                                            "runs the guest (commit point)")
    if method == "lowmem":
        # Postcopy: the guest runs on the new QEMU from the switch on, while its pages
        # follow, but qemu-upgrade stamps commit_ms (and prints its "commit point" line)
        # only once the last page has arrived. So: the "postcopy switch" line (the old
        # QEMU's MIGRATION postcopy-active event, which QEMU sends right after its STOP) plus
        # the pause (that STOP to the new QEMU's RESUME). Where the tool stopped the guest
        # before the copy (TCG before 9.0) STOP came a little earlier and this is a few ms
        # too late.
        switch = progress_ms(p.stderr, "postcopy switch")
        if switch and rep.get("pause_ms", -1) >= 0:
            running = f"{float(switch) + rep['pause_ms']:.1f}"
        else:
            notes.append("no postcopy switch line in qemu-upgrade's progress")
    # Guest RAM sent: precopy and postcopy, like plain migration, QEMU's ram.transferred (the
    # report's transferred_bytes); the in-place handover, the pages QEMU sent
    # (ram_copied_bytes).
    sent = rep.get("transferred_bytes" if copy else "ram_copied_bytes", "")
    row.update(downtime_ms=rep["downtime_ms"], pause_ms=f"{rep['pause_ms']:.2f}",
               total_ms=f"{rep['total_ms']:.1f}", wall_ms=f"{wall:.1f}",
               running_ms=running,
               retired_ms=f"{gone_ms:.1f}" if exited else "",
               ram_transferred_bytes=sent,
               stream_bytes=rep.get("transferred_bytes", ""),
               reported_extra_mem_bytes=rep.get("extra_memory_bytes", ""),
               peak_extra_mem_bytes=mem["peak_extra_kb"] * 1024,
               peak_extra_held_bytes=mem.get("held_extra_kb", 0) * 1024,
               peak_extra_qemus_bytes=qemus_extra,
               **free_fields(mem),
               mem_samples=mem["samples"], mem_max_gap_ms=f"{mem['max_gap_us'] / 1000:.1f}")
    info = [f"strategy {rep.get('strategy')}"]
    if copy:
        info.append(f"ram_copied_bytes {int(rep.get('ram_copied_bytes') or 0) / MiB:.1f} MiB")
        info.append(f"new QEMU's RAM: {ram_mapping(rep['new_pid'], size)}")
        if rep.get("downtime_ms") is not None and rep["downtime_ms"] > rep["total_ms"]:
            # QEMU 7.2 computes a postcopy's downtime at the switch in whole ms; when that
            # is 0 it takes it for "not set" at completion and stores its end time minus a
            # precopy-only start time that is still 0: its clock (~the host's uptime in ms).
            info.append(f"QEMU reported downtime {rep['downtime_ms']:.0f} ms, longer than the "
                        "whole operation: 7.2 reads a postcopy switch of 0 ms as not set and "
                        "reports its clock instead; recorded as 0")
            row["downtime_ms"] = "0"
        if method == "lowmem" and rep.get("commit_ms"):
            info.append(f"report commit_ms {rep['commit_ms']:.1f} (after the last page)")
        if before:
            info.append(f"old QEMU before: Rss {before.get('Rss', 0) / MiB:.0f} MiB, "
                        f"AnonHugePages {before.get('AnonHugePages', 0) / MiB:.0f} MiB")
    if procs:
        info.append(procs)
    if not exited:
        notes.append("old QEMU still running 30 s after qemu-upgrade returned")
    st = runstate(qmp)
    if st != "running":
        notes.append(f"new QEMU run state {st}")
    bad = verify(a.helpers, rep["new_pid"], size, seed, skip)
    row["verify_bad_pages"] = bad
    if bad:
        notes.append(f"{bad} guest pages differ after the upgrade")
    if method in ("sparse",) + HUGE:
        info.append(f"new QEMU's RAM: {ram_mapping(rep['new_pid'], size)}")
        info.append("old QEMU held " + ", ".join(f"{k} {v / 1024:.0f} MiB"
                                                 for k, v in held_before.items()))
    row["note"] = "; ".join(info + notes) if method != "upgrade" else "; ".join(notes)
    return not notes


def run_migrate(a, t, row):
    size = a.size_gib * GiB
    wait_for_memory(2 * size + MARGIN, "2 x guest RAM + 1.5 GiB")
    pid, qmp = start_qemu(a.qemu, a.accel, a.size_gib, False, t.workdir, "src")
    srcp = t.track(pid)
    seed = int(time.time() * 1000) & 0xFFFFFFFF
    row["fill_s"] = f"{fill(a.helpers, pid, size, seed):.2f}"
    quiesce(a, row)

    src = QMP(qmp)
    dst = None
    try:
        st = src.cmd("query-status")["status"]
        if st != "running":
            raise BenchError(f"guest not running after the fill: {st}")
        src.cmd("migrate-set-capabilities",
                capabilities=[{"capability": "events", "state": True}])
        src.cmd("migrate-set-parameters", **{"max-bandwidth": MAX_BANDWIDTH})
        got = src.cmd("query-migrate-parameters")
        if got.get("max-bandwidth") != MAX_BANDWIDTH:
            raise BenchError(f"max-bandwidth is {got.get('max-bandwidth')}")

        mw = MemWatch(a.helpers)
        pw = None
        try:
            pw = ProcWatch(t.workdir, pid)
            t0 = time.time()
            m0 = time.monotonic()
            dpid, dqmp_path = start_qemu(a.qemu, a.accel, a.size_gib, False, t.workdir, "dst",
                                         ["-incoming", f"unix:{t.workdir}/mig.sock"])
            t.track(dpid)
            dst = QMP(dqmp_path)
            src.cmd("migrate", uri=f"unix:{t.workdir}/mig.sock")
            done = src.wait_event(lambda e: e["event"] == "MIGRATION" and
                                  e["data"]["status"] in ("completed", "failed", "cancelled"),
                                  600)
            if done is None or done["data"]["status"] != "completed":
                info = src.cmd("query-migrate")
                raise BenchError(f"migration did not complete: {info.get('status')} "
                                 f"{info.get('error-desc', '')}")
            resume = dst.wait_event(lambda e: e["event"] == "RESUME", 60)
            if resume is None:
                raise BenchError("destination did not resume: "
                                 f"{dst.cmd('query-status')['status']}")
            wall = (time.monotonic() - m0) * 1000
            stop = src.wait_event(lambda e: e["event"] == "STOP", 1)
            info = src.cmd("query-migrate")
            dstate = dst.cmd("query-status")["status"]
            src.cmd("quit")
            src.close()
            exited = srcp.exited(30)
            retired = (time.monotonic() - m0) * 1000
            procs, qemus_extra = pw.stop()
            pw = None
            mem = mw.stop()
        finally:
            if pw:
                pw.stop()
            mw.kill()
    finally:
        src.close()
        if dst:
            dst.close()
    ram = info.get("ram", {})
    row.update(downtime_ms=info.get("downtime", ""),
               pause_ms=f"{(resume['ts'] - stop['ts']) * 1000:.1f}" if stop else "",
               total_ms=f"{(resume['ts'] - t0) * 1000:.1f}", wall_ms=f"{wall:.1f}",
               running_ms=f"{(resume['ts'] - t0) * 1000:.1f}",
               retired_ms=f"{retired:.1f}" if exited else "",
               ram_transferred_bytes=ram.get("transferred", ""),
               stream_bytes="",
               peak_extra_mem_bytes=mem["peak_extra_kb"] * 1024,
               peak_extra_held_bytes=mem.get("held_extra_kb", 0) * 1024,
               peak_extra_qemus_bytes=qemus_extra,
               **free_fields(mem),
               mem_samples=mem["samples"], mem_max_gap_ms=f"{mem['max_gap_us'] / 1000:.1f}")
    row["note"] = (f"QEMU total-time {info.get('total-time')} ms, setup "
                   f"{info.get('setup-time')} ms, {ram.get('mbps', 0):.0f} Mbit/s, "
                   f"dirty-sync-count {ram.get('dirty-sync-count')}"
                   + (f"; {procs}" if procs else ""))
    notes = []
    if stop is None:
        notes.append("no STOP event from the source")
    if not exited:
        notes.append("source QEMU still running 30 s after quit")
    if dstate != "running":
        notes.append(f"destination run state {dstate}")
    bad = verify(a.helpers, dpid, size, seed)
    row["verify_bad_pages"] = bad
    if bad:
        notes.append(f"{bad} guest pages differ on the destination")
    if notes:
        row["note"] += "; " + "; ".join(notes)
    return not notes


def tool_build(path):
    """The qemu-upgrade binary a run used: its mtime and the start of its sha256 (others
    may rebuild it between runs)."""
    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        mtime = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(os.stat(path).st_mtime))
        return f"{mtime}Z sha256:{digest}"
    except OSError as e:
        return f"unreadable: {e.strerror}"


def cmd_run(a):
    row = {k: "" for k in CSV_FIELDS}
    row.update(size_gib=a.size_gib, method=METHOD_NAMES[a.method],
               run=a.run, accel=a.accel, timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               loadavg=f"{os.getloadavg()[0]:.2f}",
               tool_build=tool_build(a.tool) if a.method != "migrate" else "")
    workdir = tempfile.mkdtemp(prefix=f"qu-bench-{a.method}-{a.size_gib}g-", dir="/tmp")
    t = Tracker(workdir)

    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    rc = 0
    try:
        if a.method == "migrate":
            ok = run_migrate(a, t, row)
        else:
            ok = run_upgrade(a, t, row, a.method)
        row["result"] = "ok" if ok else "check-failed"
        rc = 0 if ok else 1
    except Skip as e:
        row["result"] = "skipped"
        row["note"] = str(e)
        rc = 3
    except (BenchError, OSError, subprocess.TimeoutExpired) as e:
        row["result"] = "failed"
        row["note"] = str(e)
        rc = 1
    except KeyboardInterrupt:
        row["result"] = "interrupted"
        rc = 130
    finally:
        t.cleanup()
        for undo in t.after:
            try:
                undo()
            except (OSError, subprocess.SubprocessError) as e:
                print(f"bench.py: cleanup after the run: {e}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        settle_memory()
    new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
    with open(a.csv, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)
    summary = (f"{row['method']:15} {a.size_gib} GiB run {a.run}: {row['result']}"
               f"  downtime {row['downtime_ms']} ms  pause {row['pause_ms']} ms"
               f"  total {row['total_ms']} ms"
               f"  extra mem {int(row['peak_extra_mem_bytes'] or 0) / MiB:.0f} MiB"
               f"  RAM sent {int(row['ram_transferred_bytes'] or 0) / MiB:.1f} MiB")
    if row["result"] != "ok":
        summary = (f"{row['method']:15} {a.size_gib} GiB run {a.run}: {row['result']}: "
                   f"{row['note']}")
    print(summary, flush=True)
    return rc


def cmd_probe_accel(a):
    """kvm if a SeaBIOS guest with no boot device stays running under -accel kvm."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("tcg")
        return 0
    workdir = tempfile.mkdtemp(prefix="qu-bench-probe-", dir="/tmp")
    t = Tracker(workdir)
    accel = "tcg"
    try:
        pid, qmp = start_qemu(a.qemu, "kvm", 1, True, workdir, "probe")
        t.track(pid)
        time.sleep(2)
        if runstate(qmp) == "running":
            accel = "kvm"
    except (BenchError, OSError):
        pass
    finally:
        t.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    print(accel)
    return 0


# --------------------------------------------------------------------------- report

def fnum(x, unit=""):
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        s = f"{x:.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else f"{x:.0f}"
    return s + unit


def cell(vals, scale=1.0, unit=""):
    v = [float(x) / scale for x in vals if x not in ("", None)]
    if not v:
        return "n/a"
    med = statistics.median(v)
    if len(v) == 1:
        return fnum(med, unit)
    return f"{fnum(med, unit)} [{fnum(min(v))}, {fnum(max(v))}]"


def med(rows, key):
    v = [float(r[key]) for r in rows if r.get(key) not in ("", None)]
    return statistics.median(v) if v else None


def ratio(x, y):
    return f"{x / y:.2f}x" if x is not None and y else "n/a"


def shmem_thp():
    """The host's shmem THP setting, e.g. 'never' (the bracketed word)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
            text = f.read()
        return text[text.index("[") + 1:text.index("]")]
    except (OSError, ValueError):
        return "unknown"


def compare_precopy(ok, sizes):
    """qemu-upgrade's precopy against plain migration of the same VM, size by size."""
    pre = [r for r in ok if r["method"] == "qemu-upgrade-precopy"]
    mig = [r for r in ok if r["method"] == "plain-migration"]
    lines, met, missed, long_pause = [], [], [], []
    for s in sizes:
        p = [r for r in pre if int(r["size_gib"]) == s]
        m = [r for r in mig if int(r["size_gib"]) == s]
        if not p or not m:
            continue
        pt, mt = med(p, "total_ms"), med(m, "total_ms")
        pr, mr = med(p, "running_ms"), med(m, "running_ms")
        px, mx = med(p, "retired_ms"), med(m, "retired_ms")
        pp, mp = med(p, "pause_ms"), med(m, "pause_ms")
        ok_total = pt is not None and mt and pt <= 1.1 * mt
        (met if ok_total else missed).append(f"{s} GiB")
        if pp is not None and mp and pp > 1.5 * mp:
            long_pause.append(f"{s} GiB ({fnum(pp, ' ms')} against {fnum(mp, ' ms')})")

        def diff(x, y):
            return f"{x - y:+.0f} ms" if x is not None and y is not None else "n/a"
        lines.append(f"  - {s} GiB: total {fnum(pt, ' ms')} against {fnum(mt, ' ms')} "
                     f"(**{ratio(pt, mt)}**, {'within' if ok_total else 'over'} 1.1x; "
                     f"{diff(pt, mt)}); until the new QEMU runs the guest {ratio(pr, mr)} "
                     f"({diff(pr, mr)}); until the old QEMU has exited {ratio(px, mx)} "
                     f"({diff(px, mx)}); pause {fnum(pp, ' ms')} against {fnum(mp, ' ms')}.")
    if not lines:
        return []
    kinds = sorted({n.split("new QEMU's RAM: ", 1)[1].split(";")[0] for n in
                    (r["note"] for r in pre) if "new QEMU's RAM: " in n})
    summary = ("  - So: the target (total at most 1.1x) is "
               + ("met at every size measured" if not missed else
                  "met at " + (", ".join(met) if met else "no size") + " and missed at "
                  + ", ".join(missed))
               + ", on medians of few runs on a shared machine (single runs vary by tens of "
               "percent: see the ranges above and the load column below).")
    if kinds and any("memfd" in k for k in kinds):
        summary += (" The two copies do not land in the same kind of memory: plain migration's "
                    "destination has anonymous RAM (transparent huge pages), qemu-upgrade's new "
                    "QEMU gets its RAM in a memfd (`" + "`, `".join(kinds) + "`; shared memory, "
                    "in 4 KiB pages unless shmem THP is enabled: here `shmem_enabled` is "
                    f"`{shmem_thp()}`) so that the next upgrade hands it over in place.")
    if long_pause:
        summary += (" The guest pause of the precopy was more than 1.5x plain migration's at "
                    + ", ".join(long_pause) + ": QEMU's own downtime (first row) shows the "
                    "same, so it is QEMU's final stop-and-copy, not qemu-upgrade's resume.")
    return ["- **qemu-upgrade by precopy against plain migration** (target: precopy's total "
            "time at most 1.1x plain migration's). Both copy the same anonymous-RAM VM with the "
            "same QEMU settings (`max-bandwidth` 1 TiB/s, default `downtime-limit`) over a UNIX "
            "socket (qemu-upgrade: a socketpair; the destination is started with `-incoming "
            "defer -S`, then `migrate-incoming fd:`, and resumed with `cont`). qemu-upgrade's "
            "total also counts inspecting and planning, and waiting for the old QEMU to exit; "
            "plain migration's ends at the destination's RESUME. Medians, precopy / plain:",
            *lines, summary]


def note_mib(rows, pattern):
    """The median of a number (MiB) that the rows' notes carry, by a regular expression with
    one group; None if none has it."""
    import re
    v = []
    for r in rows:
        m = re.search(pattern, r.get("note") or "")
        if m:
            v.append(float(m.group(1)))
    return statistics.median(v) if v else None


def compare_lowmem(ok, sizes):
    """qemu-upgrade --low-memory (postcopy with release-ram) against its precopy and plain
    migration of the same VM: peak extra host memory against the target (at most 10% of
    guest RAM; a precopy or plain migration needs 100%), and time and pause."""
    low = [r for r in ok if r["method"] == "qemu-upgrade-lowmem"]
    if not low:
        return []
    pre = [r for r in ok if r["method"] == "qemu-upgrade-precopy"]
    mig = [r for r in ok if r["method"] == "plain-migration"]
    measures = [("the two QEMUs' RssAnon + RssShmem", "peak_extra_qemus_bytes"),
                ("AnonPages + Shmem", "peak_extra_held_bytes"),
                ("MemFree + per-CPU lists", "peak_extra_free_bytes"),
                ("MemAvailable", "peak_extra_mem_bytes")]
    lines, verdicts = [], []
    for s in sizes:
        L = [r for r in low if int(r["size_gib"]) == s]
        P = [r for r in pre if int(r["size_gib"]) == s]
        M = [r for r in mig if int(r["size_gib"]) == s]
        if not L:
            continue
        guest = s * 1024

        def pct(x):
            return f"{100 * x / guest:.0f}%" if x is not None else "n/a"

        def mem(rows, key):
            v = med(rows, key)
            return v / MiB if v is not None else None
        parts, met, missed = [], [], []
        for name, key in measures:
            lv = mem(L, key)
            if lv is None:
                continue
            (met if lv <= 0.1 * guest else missed).append(name)
            others = "; ".join(f"{label} {fnum(mem(rows, key), ' MiB')} ({pct(mem(rows, key))})"
                               for label, rows in (("precopy", P), ("plain migration", M))
                               if mem(rows, key) is not None)
            parts.append(f"by {name} {fnum(lv, ' MiB')} (**{pct(lv)}**"
                         + (f"; {others}" if others else "") + ")")
        verdicts.append((s, met, missed))
        pcp = mem(L, "pcp_growth_bytes")
        thp = note_mib(L, r"old QEMU before: Rss \d+ MiB, AnonHugePages (\d+) MiB")
        own = mem(L, "reported_extra_mem_bytes")
        extra = []
        if pcp is not None:
            extra.append(f"the per-CPU free lists had grown by {fnum(pcp, ' MiB')} at the lowest "
                         "MemAvailable")
        if own is not None:
            extra.append(f"the new QEMU's private memory (`extra_memory_bytes`) "
                         f"{fnum(own, ' MiB')}")
        if thp is not None:
            extra.append(f"the old QEMU had {thp:.0f} MiB of its guest RAM in transparent huge "
                         "pages before")
        part = note_mib(L, r"partially mapped huge pages at most \d+ \(([+-]?\d+),")
        if part is not None:
            extra.append(f"at most {part:.0f} more 2 MiB huge pages were partially mapped at a "
                         f"time (release-ram had discarded some of their 4 KiB pieces; such a "
                         f"page is freed with its last piece): at most {2 * part:.0f} MiB")

        def t(rows, key):
            return fnum(med(rows, key), " ms") if rows else "n/a"
        timing = (f"pause {t(L, 'pause_ms')} (precopy {t(P, 'pause_ms')}, plain migration "
                  f"{t(M, 'pause_ms')}); until the new QEMU runs the guest "
                  f"{t(L, 'running_ms')} ({t(P, 'running_ms')}, {t(M, 'running_ms')}); total "
                  f"{t(L, 'total_ms')} ({t(P, 'total_ms')}, {t(M, 'total_ms')}), of which the "
                  f"old QEMU exits at {t(L, 'retired_ms')} ({t(P, 'retired_ms')}, "
                  f"{t(M, 'retired_ms')})")
        lines.append(f"  - {s} GiB ({len(L)} runs): peak extra host memory "
                     + "; ".join(parts) + ". Target "
                     + ("**met** by every measure" if not missed else
                        "**missed** by " + ", ".join(missed)
                        + (" (met by " + ", ".join(met) + ")" if met else ""))
                     + (". Also measured: " + "; ".join(extra) if extra else "") + ". Time: "
                     + timing + ".")
    if not lines:
        return []
    out = ["- **qemu-upgrade --low-memory (postcopy with release-ram) against precopy and plain "
           "migration** (target: peak extra host memory at most 10% of guest RAM; a precopy "
           "or a plain migration needs a second copy, 100%). The same anonymous-RAM VM; the "
           "new QEMU gets its RAM in a shared memfd, the old QEMU frees each page once sent. "
           "Medians, % of guest RAM in parentheses, then precopy's and plain migration's "
           "numbers:", *lines]
    def where(name):
        yes = [s for s, met, missed in verdicts if name in met]
        no = [s for s, met, missed in verdicts if name in missed]
        if not no:
            return "met at every size"
        if not yes:
            return "missed at every size"
        return ("met at " + ", ".join(f"{s} GiB" for s in yes) + ", missed at "
                + ", ".join(f"{s} GiB" for s in no))
    miss_avail = [s for s, met, missed in verdicts if "MemAvailable" in missed]
    free_ok = [s for s, met, missed in verdicts if "MemFree + per-CPU lists" in met]
    summary = ("  - So, the target (at most 10% of guest RAM): by what the two QEMUs hold "
               f"(RssAnon + RssShmem, immune to other jobs) {where(measures[0][0])}; by "
               f"AnonPages + Shmem (host-wide) {where('AnonPages + Shmem')}; by every free "
               f"page (MemFree + per-CPU lists, host-wide) {where('MemFree + per-CPU lists')}; "
               f"by MemAvailable {where('MemAvailable')}.")
    if miss_avail:
        pcps = [(s, med([r for r in low if int(r["size_gib"]) == s], "pcp_growth_bytes"),
                 med([r for r in low if int(r["size_gib"]) == s], "peak_extra_mem_bytes"))
                for s in miss_avail]
        pcps = [(s, p / MiB, m / MiB) for s, p, m in pcps if p is not None and m is not None]
        summary += (" Why MemAvailable misses: the pages the old QEMU frees, and the "
                    "allocator's traffic for the new QEMU's 4 KiB shmem pages, end up on the "
                    "page allocator's per-CPU free lists, which the kernel lets grow under heavy "
                    "free/allocate traffic (automatic `pcp->high` tuning) and shrinks only "
                    "slowly afterwards. Those pages are free (the kernel drains the lists under "
                    "memory pressure), but MemFree, and so MemAvailable, does not count them."
                    + (" At the lowest MemAvailable the lists had grown by "
                       + "; ".join(f"{p:.0f} MiB of a {m:.0f} MiB drop ({s} GiB)"
                                   for s, p, m in pcps)
                       + " (medians): the drop is the lists' growth, and that did not grow with "
                       "the guest (the kernel bounds each CPU's list), so its share of guest RAM "
                       "falls with size." if pcps else "")
                    + " Anything that admits work by MemAvailable sees it as used.")
    parts_thp = [note_mib([r], r"partially mapped huge pages at most \d+ \(([+-]?\d+),")
                 for r in low]
    parts_thp = [x for x in parts_thp if x is not None]
    thps = [note_mib([r for r in low if int(r["size_gib"]) == s],
                     r"old QEMU before: Rss \d+ MiB, AnonHugePages (\d+) MiB") for s in sizes]
    if parts_thp and any(thps):
        worst = max(parts_thp)
        summary += (" Transparent huge pages on the source are not what costs: the old QEMU's "
                    "guest RAM was almost all in 2 MiB huge pages, release-ram discards a few "
                    "4 KiB pieces at a time (each huge page is split, and freed only with its "
                    f"last piece), but in no run were more than {worst:.0f} more huge pages "
                    f"partially mapped at a time ({2 * worst:.0f} MiB): QEMU sends in address "
                    "order, so a huge page's pieces go out together.")
    if len(free_ok) < len(verdicts):
        summary += (" Where even MemFree + per-CPU lists misses, memory was really in use "
                    "beyond the QEMUs' pages: see the QEMUs' own row (the old QEMU still "
                    "holding pages the new one already has) and the `note` column.")
    ratios = []
    for s in sizes:
        L = [r for r in low if int(r["size_gib"]) == s]
        P = [r for r in pre if int(r["size_gib"]) == s]
        M = [r for r in mig if int(r["size_gib"]) == s]
        if L and (P or M):
            ratios.append(f"{s} GiB {ratio(med(L, 'total_ms'), med(P, 'total_ms')) if P else 'n/a'}"
                          f" / {ratio(med(L, 'total_ms'), med(M, 'total_ms')) if M else 'n/a'}")
    dts = [float(r["downtime_ms"]) for r in low if r.get("downtime_ms") not in ("", None)]
    runs = [med([r for r in low if int(r["size_gib"]) == s], "running_ms") for s in sizes]
    runs = [x for x in runs if x is not None]
    summary += (" Pause: the postcopy switch moves only the device state (QEMU's downtime "
                + (f"{min(dts):.0f}-{max(dts):.0f} ms" if dts else "n/a")
                + "); the guest then runs on the new QEMU "
                + (f"{min(runs):.0f}-{max(runs):.0f} ms after the start (medians, whatever the "
                   "size)" if runs else "soon") + " while its pages follow, a page it touches first fetched on "
                "demand, where a precopy stops it for its last round (some hundred ms) and runs "
                "it on the new QEMU only once every page has moved. Total: every page still "
                "crosses once; the low-memory total against precopy / plain migration was "
                + "; ".join(ratios)
                + " (not looked into: postcopy places each page with one `UFFDIO_COPY`, needs "
                "no dirty-log syncs and has no final round). From the switch until the total, "
                "the guest's memory is split between the two QEMUs: if either dies then, the "
                "guest is lost (qemu-upgrade's warning).")
    out.append(summary)
    return out


def notes(rows, sizes):
    """Observations computed from this run's numbers."""
    ok = [r for r in rows if r["result"] == "ok"]
    out = ["## Notes on these numbers\n"]
    up = [r for r in ok if r["method"] == "qemu-upgrade"]
    mig = [r for r in ok if r["method"] == "plain-migration"]
    pre = [r for r in ok if r["method"] == "qemu-upgrade-precopy"]
    out += compare_lowmem(ok, sizes)
    out += compare_precopy(ok, sizes)
    if up:
        parts = []
        for s in sizes:
            rs = [r for r in up if int(r["size_gib"]) == s and r["running_ms"] and r["retired_ms"]]
            if rs:
                run = statistics.median(float(r["running_ms"]) for r in rs)
                ret = statistics.median(float(r["retired_ms"]) - float(r["running_ms"])
                                        for r in rs)
                parts.append(f"{s} GiB: {run:.0f} ms to the commit point, then {ret:.0f} ms")
        if parts:
            out.append("- The old QEMU exits after the guest already runs in the new one (" +
                       "; ".join(parts) + "); qemu-upgrade returns once it has killed it, without "
                       "waiting for that exit (it waits only after a copy, whose freed memory the "
                       "host's ledger counts). The guest is not paused during that tail, and it "
                       "grows with guest size: the old QEMU's main thread is already a zombie while its last "
                       "thread (KVM's `kvm-nx-lpage-recovery` task, kernel stack in "
                       "`exit_mmap` -> `unmap_page_range`) drops the last reference to its "
                       "address space and unmaps the guest RAM: page tables over every page "
                       "the fill (in a real VM, the guest) touched. The pages stay; the new "
                       "QEMU holds them.")
        rep_mem = [int(r["reported_extra_mem_bytes"]) for r in up
                   if r.get("reported_extra_mem_bytes")]
        if rep_mem:
            out.append(f"- qemu-upgrade's own `extra_memory_bytes` (the new QEMU's private "
                       f"memory) was {statistics.median(rep_mem) / MiB:.0f} MiB median; the "
                       "host-wide MemAvailable drop above also counts page tables, the tool "
                       "itself and other work on the machine.")
    if pre:
        parts = []
        for s in sizes:
            rs = [r for r in pre if int(r["size_gib"]) == s and r["reported_extra_mem_bytes"]]
            if rs:
                parts.append(f"{s} GiB: {med(rs, 'reported_extra_mem_bytes') / MiB:.0f} MiB")
        kinds = sorted({n.split("new QEMU's RAM: ", 1)[1].split(";")[0] for n in
                        (r["note"] for r in pre) if "new QEMU's RAM: " in n})
        if parts:
            out.append("- With precopy the new QEMU holds a full second copy of the guest RAM "
                       "until the old QEMU has exited, as the destination of a plain migration "
                       "does (the \"held by processes\" row). qemu-upgrade's own "
                       "`extra_memory_bytes` (the new QEMU's private memory) was "
                       + "; ".join(parts) + " (median)"
                       + (f"; the new QEMU's guest RAM was `{kinds[0]}`"
                          if len(kinds) == 1 else
                          f"; the new QEMU's guest RAM was one of {kinds}" if kinds else "")
                       + (" (qemu-upgrade moves the copied RAM into a memfd, so that later "
                          "upgrades hand it over in place; that memory is shared, not "
                          "private, so `extra_memory_bytes` leaves it out)"
                          if any("memfd" in k for k in kinds) else "")
                       + ". The precopy runs' `note` column has the strategy, the report's "
                       "`ram_copied_bytes` and the new QEMU's RAM mapping; their `RAM sent` is "
                       "the report's `transferred_bytes` (QEMU's `ram.transferred`, as for "
                       "plain migration).")
    low = [r for r in ok if r["method"] == "qemu-upgrade-lowmem"]
    for name, rs in (("plain migrations", mig), ("qemu-upgrade precopy runs", pre),
                     ("qemu-upgrade low-memory (postcopy) runs", low)):
        over = [r for r in rs if r["ram_transferred_bytes"] and
                int(r["ram_transferred_bytes"]) > 1.1 * int(r["size_gib"]) * GiB]
        if over:
            extra = statistics.median((int(r["ram_transferred_bytes"]) -
                                       int(r["size_gib"]) * GiB) / MiB for r in over)
            out.append(f"- {len(over)} of {len(rs)} {name} sent more than the guest's RAM "
                       f"(median {extra:.0f} MiB extra"
                       + ("; their QEMU notes show one more dirty sync" if rs is mig else "")
                       + "). The idle guest does not rewrite its memory: the dirty log "
                       "reported pages dirty again (see README.md, Caveats).")
    cop = mig + pre
    over_dt = [r for r in cop if r["downtime_ms"] and float(r["downtime_ms"]) > 300]
    if cop:
        out.append("- The downtime of both copies (plain migration, and qemu-upgrade's precopy) "
                   "is governed by 7.2's `downtime-limit` (300 ms): QEMU stops the guest as "
                   "soon as its bandwidth estimate says that what is left can be sent within "
                   "it, so the pause is some hundred ms whatever the size."
                   + (f" It is an estimate: {len(over_dt)} of {len(cop)} runs were paused "
                      "longer (" + ", ".join(f"{r['size_gib']} GiB {r['method']}: "
                                             f"{float(r['downtime_ms']):.0f} ms"
                                             for r in over_dt) + ")." if over_dt else ""))
    gaps = []
    for m in METHOD_ORDER:
        for sz in sizes:
            rs = [r for r in ok if r["method"] == m and int(r["size_gib"]) == sz
                  and r.get("peak_extra_held_bytes") not in ("", None)]
            if rs:
                g = statistics.median((int(r["peak_extra_mem_bytes"]) -
                                       int(r["peak_extra_held_bytes"])) / MiB for r in rs)
                gaps.append(f"{m} {sz} GiB {g:+.0f} MiB")
    if gaps:
        out.append("- The first two memory rows differ by what MemAvailable counts and AnonPages + "
                   "Shmem does not: free pages parked on the kernel's per-CPU lists (not counted "
                   "as free; a copy into 4 KiB shmem pages makes them grow, see README.md, "
                   "Caveats), other kernel memory that /proc/meminfo does not itemize, other "
                   "jobs. MemAvailable drop minus the held memory, median: "
                   + "; ".join(gaps) + ".")
    neg = [r for r in ok if r["peak_extra_mem_bytes"] and int(r["peak_extra_mem_bytes"]) < 0]
    out.append("- Peak extra host memory is host-wide (MemAvailable) and this machine is "
               "shared: other jobs starting or ending VMs move it by up to ~150 MiB either "
               "way" + (f" ({len(neg)} run(s) came out negative)." if neg else "."))
    out.append("")
    return out


def cmd_report(a):
    with open(a.csv) as f:
        rows = list(csv.DictReader(f))
    sizes = sorted({int(r["size_gib"]) for r in rows})
    present = {r["method"] for r in rows}
    methods = [m for m in METHOD_ORDER if m in present]
    heads = METHOD_HEADS
    metrics = [
        ("QEMU downtime", "downtime_ms", 1, " ms"),
        ("guest pause (STOP -> RESUME)", "pause_ms", 1, " ms"),
        ("total time", "total_ms", 1, " ms"),
        ("... until the new QEMU runs the guest", "running_ms", 1, " ms"),
        ("... until the old QEMU has exited", "retired_ms", 1, " ms"),
        ("peak extra host memory (MemAvailable)", "peak_extra_mem_bytes", MiB, " MiB"),
        ("... held by processes (AnonPages + Shmem)", "peak_extra_held_bytes", MiB, " MiB"),
        ("... held by the two QEMUs (RssAnon + RssShmem)", "peak_extra_qemus_bytes", MiB,
         " MiB"),
        ("... all free pages (MemFree + per-CPU lists)", "peak_extra_free_bytes", MiB, " MiB"),
        ("guest RAM sent", "ram_transferred_bytes", MiB, " MiB"),
    ]
    qver = subprocess.run([a.qemu, "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]
    with open("/proc/meminfo") as f:
        memtotal = int(f.readline().split()[1]) * 1024
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--", "..",
                                ":!bench"], capture_output=True, text=True).stdout.split("\n")
        dirty = [d[3:] for d in dirty if d.strip()]
    except OSError:
        commit, dirty = "", []
    out = []
    out.append("# qemu-upgrade (in place, low-memory postcopy, and precopy) vs. plain localhost "
               "migration\n")
    out.append(f"- Command: `{a.command}`")
    stamps = sorted(r["timestamp"] for r in rows if r["timestamp"])
    out.append(f"- Date: runs from {stamps[0]} to {stamps[-1]}, report written "
               f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
               + (f" (repository at {commit}; bench/ uncommitted changes possible"
                  + (f"; also uncommitted when the report was written: "
                     f"{', '.join('`' + d + '`' for d in dirty)}" if dirty else "")
                  + ")" if commit else ""))
    builds = sorted({r.get("tool_build", "") for r in rows if r.get("tool_build")})
    if builds:
        out.append(f"- qemu-upgrade binary: " + "; ".join(f"`{b}`" for b in builds)
                   + (" (**more than one build**: it was rebuilt during the runs; "
                      "`tool_build` in results.csv says which run used which)"
                      if len(builds) > 1 else ""))
    out.append(f"- QEMU: {qver} (`{a.qemu}`), old and new QEMU the same binary")
    out.append(f"- Host: {os.cpu_count()} CPUs, MemTotal {memtotal / GiB:.1f} GiB, "
               f"kernel {os.uname().release}")
    out.append(f"- Accelerator: `-accel {a.accel}` (SeaBIOS guest, no boot device, idle)")
    out.append("- Guest: `-machine q35 -m SIZE -nodefaults -display none`; qemu-upgrade (in "
               "place): RAM in `memory-backend-memfd,share=on`, strategy "
               "`shared-ram-handover`; plain migration: anonymous RAM, "
               f"`max-bandwidth` {MAX_BANDWIDTH} B/s, default `downtime-limit`, "
               "`migrate uri=unix:...`; qemu-upgrade (precopy): the plain-migration VM "
               "(anonymous RAM), `qemu-upgrade --pid PID --new-binary QEMU --json "
               "--allow-copy`, strategy `precopy` (it sets the same `max-bandwidth`, keeps the "
               "default `downtime-limit`); qemu-upgrade (low-memory): the same anonymous-RAM VM, "
               "`qemu-upgrade --pid PID --new-binary QEMU --json --low-memory`, strategy "
               "`postcopy` (capabilities `postcopy-ram` and `release-ram`, "
               "`migrate-start-postcopy` right after `migrate`"
               + (": a live postcopy" if a.accel == "kvm" else
                  "; under TCG before QEMU 9.0 the guest is stopped first") + ")")
    extra = {"qemu-upgrade-sparse": "in place, sparse: the same memfd guest, not filled: only "
             "the firmware and a 64 MiB window at the middle of guest RAM (written before and "
             "checked after) are touched",
             "qemu-upgrade-hugetlb": "in place, hugetlb memfd: `memory-backend-memfd,share=on,"
             "hugetlb=on,hugetlbsize=2M`, filled",
             "qemu-upgrade-hugedir": "in place, hugetlbfs directory: `memory-backend-file,"
             "share=on,mem-path=DIR`, DIR a `hugetlbfs` mount (`pagesize=2M`) made for the run, "
             "filled"}
    for m in methods:
        if m in extra:
            out.append(f"- Guest, {extra[m]}" + ("; strategy `shared-ram-handover`"))
    if any(m in methods for m in ("qemu-upgrade-hugetlb", "qemu-upgrade-hugedir")):
        out.append("- Huge pages: each run raised `vm.nr_hugepages` by the guest's size in 2 MiB "
                   "pages before starting the VM and lowered it by as many after the run")
    waits = sorted({(int(r["size_gib"]), r["method"], r["wait_s"]) for r in rows
                    if r.get("wait_s")})
    if waits:
        out.append("- Between filling guest RAM and the measured operation every run waited "
                   + ", ".join(f"{w} s ({g} GiB {m})" for g, m, w in waits)
                   + ", so that the memory the new QEMU gets is equally cold for every run "
                   "(this host is a VM whose free memory is reported to its hypervisor; see "
                   "README.md, Caveats)")
    out.append("- Guest RAM filled with a non-zero pattern (`bench/fill-ram`) before every run, "
               "except the first MiB and the 32 MiB below the top of low memory (the idle "
               "firmware's pages); checked again in the new QEMU after every run")
    out.append("")
    out.append("Median of the runs, [min, max] in brackets. Pause for qemu-upgrade (every "
               "strategy) is its own `pause_ms`; for plain migration the destination's RESUME "
               "event timestamp minus the source's STOP event timestamp. Total time: "
               "qemu-upgrade's `total_ms` (it returns once it has killed the old QEMU of a handover, "
               "once the old QEMU has exited after a copy); plain "
               "migration from starting the destination QEMU to its RESUME event (the source "
               "still exists). The two rows below it split all of them the same way: until the "
               "guest runs in the new QEMU (qemu-upgrade: the report's `commit_ms`), and until "
               "the old QEMU has exited (qemu-upgrade: its pidfd became readable, timed by the "
               "bench from the tool's start; plain migration: after `quit` on the source). For the "
               "low-memory postcopy the guest runs on the new QEMU from the switch on while its "
               "pages still follow, and the report's `commit_ms` is stamped only after the last "
               "page: its \"until the new QEMU runs the guest\" is the tool's `postcopy switch` "
               "progress line plus `pause_ms`, and its total includes moving every page. Peak "
               "extra host memory, four ways: the drop of MemAvailable; the rise of AnonPages + "
               "Shmem (what processes hold); the rise of the old and the new QEMU's own RssAnon + "
               "RssShmem over what the old one held at the start (the copies only; other jobs "
               "on the machine cannot move it); the drop of MemFree plus the free pages on the "
               "kernel's per-CPU lists (every free page; MemAvailable leaves the per-CPU lists "
               "out). Guest RAM sent: in place, the report's `ram_copied_bytes`; precopy and "
               "postcopy, its `transferred_bytes`; plain migration, `ram.transferred` of "
               "`query-migrate`. See README.md for the definitions.\n")
    out.append("| guest RAM | metric | " + " | ".join(heads[m] for m in methods) + " |")
    out.append("|" + " --- |" * (len(methods) + 2))
    skipped = []
    for s in sizes:
        ok = {m: [r for r in rows if int(r["size_gib"]) == s and r["method"] == m
                  and r["result"] == "ok"] for m in methods}
        n = {m: len(ok[m]) for m in methods}
        for r in rows:
            if int(r["size_gib"]) == s and r["result"] != "ok":
                skipped.append(r)
        for i, (label, key, scale, unit) in enumerate(metrics):
            first = (f"**{s} GiB** (runs: " + " / ".join(str(n[m]) for m in methods) + ")") \
                if i == 0 else ""
            out.append(f"| {first} | {label} | "
                       + " | ".join(cell([r.get(key, "") for r in ok[m]], scale, unit)
                                    for m in methods) + " |")
    out.append("")
    out += notes(rows, sizes)
    if skipped:
        out.append("## Runs not counted\n")
        for r in skipped:
            out.append(f"- {r['size_gib']} GiB {r['method']} run {r['run']}: {r['result']}: "
                       f"{r['note']}")
        out.append("")
    out.append("## Every run\n")
    out.append("Raw numbers, also in `bench/results.csv`. `running`/`retired`: ms until the new "
               "QEMU runs the guest / the old QEMU has exited; `wall` is the qemu-upgrade "
               "command's own run time, or for plain migration the host time from starting the "
               "destination to seeing its RESUME event; `samples`/`gap` are the memory sampler's "
               "sample count and largest interval; `extra mem`/`held`/`QEMUs`/`free`: the peak extra "
               "host memory by MemAvailable / by AnonPages + Shmem / by the two QEMUs' RssAnon + "
               "RssShmem / by MemFree + per-CPU lists; "
               "`pcp`: how much the per-CPU free lists had grown at the lowest MemAvailable; "
               "`wait s` the idle time between the fill and the "
               "operation; `load` is the host's 1-minute load average when the operation started "
               "(the machine is shared).\n")
    out.append("| GiB | method | run | result | downtime ms | pause ms | total ms | running ms | "
               "retired ms | wall ms | RAM sent MiB | extra mem MiB | held MiB | QEMUs MiB | free MiB | "
               "pcp MiB | "
               "samples | gap ms | fill s | wait s | bad pages | load | note |")
    out.append("|" + " --- |" * 23)
    for r in rows:
        def mib(x):
            return f"{int(x) / MiB:.1f}" if x not in ("", None) else ""
        out.append(f"| {r['size_gib']} | {r['method']} | {r['run']} | {r['result']} | "
                   f"{r['downtime_ms']} | {r['pause_ms']} | {r['total_ms']} | "
                   f"{r['running_ms']} | {r['retired_ms']} | {r['wall_ms']} | "
                   f"{mib(r['ram_transferred_bytes'])} | {mib(r['peak_extra_mem_bytes'])} | "
                   f"{mib(r.get('peak_extra_held_bytes'))} | "
                   f"{mib(r.get('peak_extra_qemus_bytes'))} | "
                   f"{mib(r.get('peak_extra_free_bytes'))} | {mib(r.get('pcp_growth_bytes'))} | "
                   f"{r['mem_samples']} | {r['mem_max_gap_ms']} | {r['fill_s']} | "
                   f"{r.get('wait_s', '')} | "
                   f"{r['verify_bad_pages']} | {r['loadavg']} | "
                   f"{r['note'].replace('|', '/')} |")
    out.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(out))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--method", choices=list(METHOD_NAMES), required=True)
    r.add_argument("--size-gib", type=int, required=True)
    r.add_argument("--run", type=int, default=1)
    r.add_argument("--accel", default="tcg")
    r.add_argument("--qemu", default="/usr/bin/qemu-system-x86_64")
    r.add_argument("--tool", required=True)
    r.add_argument("--helpers", required=True)
    r.add_argument("--csv", required=True)
    r.add_argument("--cold-wait", type=float, default=None,
                   help="seconds to wait between the fill and the operation "
                        "(default 10 + 3 per GiB)")
    pr = sub.add_parser("probe-accel")
    pr.add_argument("--qemu", default="/usr/bin/qemu-system-x86_64")
    rp = sub.add_parser("report")
    rp.add_argument("--csv", required=True)
    rp.add_argument("--out", required=True)
    rp.add_argument("--command", required=True)
    rp.add_argument("--accel", required=True)
    rp.add_argument("--qemu", default="/usr/bin/qemu-system-x86_64")
    a = p.parse_args()
    return {"run": cmd_run, "probe-accel": cmd_probe_accel, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
