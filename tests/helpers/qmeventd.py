#!/usr/bin/python3
"""qmeventd.py: a stand-in for Proxmox VE's qmeventd, for tests (standard library only).

It does what qemu-server's src/qmeventd/qmeventd.c does with a QEMU that connects to its
socket (docs/proxmox.md has the functions), and writes down every step:
- accept; the peer's PID and UID from SO_PEERCRED (a non-root peer is turned away);
- on QEMU's greeting, the VMID from /proc/PID/cmdline: the word after "-pidfile", whose last
  component must be VMID.pid (qmeventd reads neither -id nor argv[0]); then
  qmp_capabilities, after which QEMU sends its events;
- one client per VMID in a table, as qmeventd's vm_clients (a second QEMU with the same VMID
  replaces the entry; a client that closes removes the VMID's entry, whichever client it
  points to);
- a SHUTDOWN event marks the client graceful (qmeventd then asks query-status and quits a
  QEMU that is no longer active; this stand-in only records it);
- when a QEMU client's connection closes, qmeventd runs `qm cleanup VMID GRACEFUL GUEST`.
  Here the part of `qm cleanup` that decides runs instead (PVE/CLI/qm.pm, `cleanup`): it asks
  vm_running_locally (PVE/QemuServer/Helpers.pm): the pidfile's one line is a PID, that
  process's argv[0] ends in "kvm" or names qemu-*, its "-pidfile" value is the pidfile's
  path, and it is not a zombie. Found running, qm cleanup polls again every second for 30 s
  and then gives up ("aborting cleanup, VM is still running"), leaving everything as it is.
  Found not running at any of those polls, it goes on: without SHUTDOWN (a crash) it unplugs
  the VM's taps, and it deactivates volumes and unlinks the qmp socket and pidfile
  (vm_stop_cleanup). This stand-in polls every --poll seconds for --window seconds.
  qm cleanup does all that under the VM's config lock (lock_config_full(VMID, 60): an flock
  on /run/lock/qemu-server/lock-VMID.conf, waited for up to 60 s): with --lock-dir, the
  stand-in takes DIR/lock-VMID.conf the same way before its first check and holds it until
  it tears down or aborts.

Log lines (one event each, appended to --log, flushed at once):
  listening
  connect pid=P uid=U              reject pid=P uid=U
  hello pid=P vmid=V pidfile=F     novmid pid=P
  table-replace vmid=V old=P new=Q
  ready pid=P                      event pid=P name=N
  close pid=P vmid=V graceful=G table=Q   (Q: the PID the table held for V, or -)
  check close=P vmid=V running=Q   (the check found QEMU Q running)
  teardown close=P vmid=V graceful=G unplug=U why=...
                                   (qm cleanup would have torn the VM down: U is what it
                                   unplugs, "none" after a SHUTDOWN, else tapVi*)
  abort close=P vmid=V pid=Q       (qm cleanup would have aborted: VM still running)
  lock-wait close=P vmid=V         (the config lock was held: waiting for it)
  lock-timeout close=P vmid=V      (not had within 60 s: qm cleanup would have died)

    qmeventd.py --socket PATH --log FILE [--poll 0.2] [--window 30] [--lock-dir DIR]
    qmeventd.py --check PIDFILE    the same check once: prints the PID it finds running (exit
                                   0), or "not running: WHY" (exit 1)
"""
import argparse
import fcntl
import json
import os
import re
import selectors
import socket
import struct
import sys
import threading
import time

ARGV0 = re.compile(r"kvm$|(?:^|/)qemu-[^/]+$")  # PVE::QemuServer::Helpers::parse_cmdline


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [w.decode(errors="replace") for w in f.read().split(b"\0")[:-1]]
    except OSError:
        return None


def pidfile_of(words):
    """The value of -pidfile as qmeventd reads it: the word after the exact word "-pidfile"."""
    for i, w in enumerate(words):
        if w == "-pidfile" and i + 1 < len(words):
            return words[i + 1]
    return None


def parse_options(words):
    """parse_cmdline's hash: option name -> value (or None), from the words after argv[0]."""
    opts, pending = {}, None
    for w in words[1:]:
        if not w:
            continue
        m = re.match(r"^--?(.*)$", w)
        if m:
            if pending is not None:
                opts[pending] = None
            pending = m.group(1)
        elif pending is not None:
            opts[pending] = w
            pending = None
    return opts


def running_locally(pidfile):
    """vm_running_locally: (pid, None) when running, else (None, why)."""
    try:
        with open(pidfile) as f:
            line = f.readline()
    except OSError as e:
        return None, f"pidfile:{e.strerror.replace(' ', '_')}"
    m = re.match(r"^(\d+)\n?$", line)
    if not m:
        return None, f"pidfile-content:{json.dumps(line)}"
    pid = int(m.group(1))
    words = cmdline(pid)
    if not words or not words[0] or not ARGV0.search(words[0]):
        return None, f"argv0-of-{pid}:{words[0] if words else 'gone'}"
    if parse_options(words).get("pidfile") != pidfile:
        return None, f"pidfile-option-of-{pid}"
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None, f"gone-{pid}"
    if state == "Z":
        return None, f"zombie-{pid}"
    return pid, None


class Stand:
    def __init__(self, a):
        self.a = a
        self.logf = open(a.log, "a", buffering=1)
        self.lock = threading.Lock()
        self.table = {}  # vmid -> client, as qmeventd's vm_clients
        self.sel = selectors.DefaultSelector()

    def log(self, line):
        with self.lock:
            self.logf.write(line + "\n")
            self.logf.flush()

    def accept(self, sock):
        conn, _ = sock.accept()
        pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != 0:
            self.log(f"reject pid={pid} uid={uid}")
            conn.close()
            return
        self.log(f"connect pid={pid} uid={uid}")
        c = {"conn": conn, "pid": pid, "buf": b"", "vmid": None, "pidfile": None, "graceful": 0, "state": "hello"}
        self.sel.register(conn, selectors.EVENT_READ, c)

    def message(self, c, obj):
        if "QMP" in obj:
            words = cmdline(c["pid"]) or []
            pf = pidfile_of(words)
            m = re.search(r"/(\d+)\.pid$", pf or "")
            if not m or int(m.group(1)) == 0:
                self.log(f"novmid pid={c['pid']}")
                return False
            c["vmid"], c["pidfile"] = m.group(1), pf
            self.log(f"hello pid={c['pid']} vmid={c['vmid']} pidfile={pf}")
            old = self.table.get(c["vmid"])
            if old is not None:
                self.log(f"table-replace vmid={c['vmid']} old={old['pid']} new={c['pid']}")
            self.table[c["vmid"]] = c
            c["conn"].sendall(b'{"execute":"qmp_capabilities"}\n')
        elif "event" in obj:
            self.log(f"event pid={c['pid']} name={obj['event']}")
            if obj["event"] == "SHUTDOWN":
                c["graceful"] = 1
        elif "return" in obj and c["state"] == "hello":
            c["state"] = "idle"
            self.log(f"ready pid={c['pid']}")
        return True

    def read(self, c):
        try:
            data = c["conn"].recv(65536)
        except OSError:
            data = b""
        if not data:
            return self.close(c)
        c["buf"] += data
        while b"\n" in c["buf"]:
            line, c["buf"] = c["buf"].split(b"\n", 1)
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and not self.message(c, obj):
                # qmeventd: cleanup_client of a client that is not (yet) a QEMU: no qm cleanup
                self.sel.unregister(c["conn"])
                c["conn"].close()
                return
        if len(c["buf"]) > 65536:
            c["buf"] = b""

    def close(self, c):
        self.sel.unregister(c["conn"])
        c["conn"].close()
        if c["vmid"] is None:
            return
        held = self.table.pop(c["vmid"], None)  # g_hash_table_remove(vm_clients, vmid)
        self.log(f"close pid={c['pid']} vmid={c['vmid']} graceful={c['graceful']} "
                 f"table={held['pid'] if held else '-'}")
        threading.Thread(target=self.qm_cleanup, args=(c,), daemon=True).start()

    def qm_cleanup(self, c):
        """`qm cleanup VMID GRACEFUL 0`: under the VM's config lock, when --lock-dir is given."""
        if not self.a.lock_dir:
            return self.decide(c)
        path = os.path.join(self.a.lock_dir, f"lock-{c['vmid']}.conf")
        with open(path, "a") as f:
            end, said = time.monotonic() + 60, False
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not said:
                        self.log(f"lock-wait close={c['pid']} vmid={c['vmid']}")
                        said = True
                    if time.monotonic() >= end:
                        self.log(f"lock-timeout close={c['pid']} vmid={c['vmid']}")
                        return
                    time.sleep(0.05)
            self.decide(c)

    def decide(self, c):
        """The decision of `qm cleanup VMID GRACEFUL 0`, polled as it polls."""
        first, end = True, time.monotonic() + self.a.window
        while True:
            pid, why = running_locally(c["pidfile"])
            if pid is None:
                # qm cleanup then unplugs the VM's taps only after a crash (no SHUTDOWN), and
                # unlinks /var/run/qemu-server/VMID.{mon,qmp,pid,vnc,qga}: the VM's own.
                unplug = "none" if c["graceful"] else f"tap{c['vmid']}i*"
                self.log(f"teardown close={c['pid']} vmid={c['vmid']} graceful={c['graceful']} "
                         f"unplug={unplug} why={why}")
                return
            if first:
                self.log(f"check close={c['pid']} vmid={c['vmid']} running={pid}")
                first = False
            if time.monotonic() >= end:
                self.log(f"abort close={c['pid']} vmid={c['vmid']} pid={pid}")
                return
            time.sleep(self.a.poll)

    def run(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(self.a.socket)
        except FileNotFoundError:
            pass
        sock.bind(self.a.socket)
        os.chmod(self.a.socket, 0o600)
        sock.listen(10)
        self.sel.register(sock, selectors.EVENT_READ, None)
        self.log("listening")
        while True:
            for key, _ in self.sel.select():
                if key.data is None:
                    self.accept(key.fileobj)
                else:
                    self.read(key.data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket")
    ap.add_argument("--log")
    ap.add_argument("--poll", type=float, default=0.2)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--lock-dir")
    ap.add_argument("--check")
    a = ap.parse_args()
    if a.check:
        pid, why = running_locally(a.check)
        print(pid if pid else f"not running: {why}")
        sys.exit(0 if pid else 1)
    if not a.socket or not a.log:
        ap.error("--socket and --log are needed (or --check)")
    Stand(a).run()


if __name__ == "__main__":
    main()
