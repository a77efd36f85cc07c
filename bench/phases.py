"""phases.py DIR: where the time of each qemu-upgrade run goes, from the logs that
QU_BENCH_PHASES=DIR made bench.py keep (the tool's -v -v output: time-stamped phases and QMP
exchanges, and its JSON report). Prints, per method and guest size, the median of each
phase over the runs, in ms:

  inspect    start -> "inspected" (/proc, QMP of the old QEMU)
  plan       -> phase target-starting (probe of the new binary, plan, journal, guardian)
  launch     -> "new QEMU started" (launcher forked into the VM's context, exec)
  qemu-init  -> the new QEMU's QMP greeting read and its qmp_capabilities answered (its own
             start-up: until then it is initialising)
  prepare    -> phase migrating (RAM blocks compared, capabilities, migrate-incoming)
  migrate    -> phase source-completed (the old QEMU's settings, migrate, until both sides
             said completed: the guest's pause starts inside this one)
  resume     -> phase committed (checks, cont, run state: the pause ends inside this one)
  retire     -> "old QEMU ... retired" (after the commit: threads, settings, kill)
  pause, running, total: the report's pause_ms, commit_ms, total_ms
"""
import glob
import json
import os
import re
import statistics
import sys

PHASES = ["inspect", "plan", "launch", "qemu-init", "prepare", "migrate", "resume", "retire"]


def stamps(path):
    t = {}
    for line in open(path):
        m = re.match(r"\[\s*([0-9.]+) ms\] (.*)", line)
        if not m:
            continue
        ms, s = float(m.group(1)), m.group(2)

        def first(k):
            t.setdefault(k, ms)
        if s.startswith("inspected"):
            first("inspected")
        elif s == "debug: phase target-starting":
            first("target-starting")
        elif s.startswith("new QEMU started"):
            first("started")
        elif s == "debug: phase migrating":
            first("migrating")
        elif s == "debug: phase source-completed":
            first("completed")
        elif s == "debug: phase committed":
            first("committed")
        elif s.startswith("old QEMU PID") and s.endswith("retired"):
            first("retired")
        elif "started" in t and "migrating" not in t and s.startswith("debug: QMP <- ") \
                and "qmp-init" not in t:
            first("qmp-init")   # the new QEMU's first answer: qmp_capabilities
    return t


def phases(t):
    order = [("inspect", None, "inspected"), ("plan", "inspected", "target-starting"),
             ("launch", "target-starting", "started"), ("qemu-init", "started", "qmp-init"),
             ("prepare", "qmp-init", "migrating"), ("migrate", "migrating", "completed"),
             ("resume", "completed", "committed"), ("retire", "committed", "retired")]
    out = {}
    for name, a, b in order:
        if b in t and (a is None or a in t):
            out[name] = t[b] - (t[a] if a else 0.0)
    return out


def main():
    d = sys.argv[1]
    groups = {}
    for err in sorted(glob.glob(os.path.join(d, "*.err"))):
        m = re.match(r"(.*)-(\d+)g-run\d+\.err$", os.path.basename(err))
        if not m:
            continue
        try:
            rep = json.load(open(err[:-4] + ".json"))
        except (OSError, ValueError):
            continue
        if rep.get("result") != "upgraded":
            continue
        p = phases(stamps(err))
        p.update(pause=rep["pause_ms"], running=rep["commit_ms"], total=rep["total_ms"])
        groups.setdefault((m.group(1), int(m.group(2))), []).append(p)
    cols = PHASES + ["pause", "running", "total"]
    print("| method | GiB | runs | " + " | ".join(cols) + " |")
    print("|" + " --- |" * (len(cols) + 3))
    for (method, size), runs in sorted(groups.items()):
        cells = []
        for c in cols:
            v = [r[c] for r in runs if c in r]
            cells.append(f"{statistics.median(v):.0f}" if v and c != "pause" else
                         f"{statistics.median(v):.1f}" if v else "")
        print(f"| {method} | {size} | {len(runs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
