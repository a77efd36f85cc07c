#!/usr/bin/python3
"""privmon.py: start a QEMU with a private QMP monitor on an inherited, already-connected
socketpair end (-chardev socket,id=ctl,fd=FD -mon chardev=ctl,mode=control) and drive one
cpr-exec over it (research probe for docs/cpr-exec-research.md; standard library only).

    privmon.py FD PIDFILE READY_FILE TIMEOUT_S -- QEMU_ARGV...

Runs QEMU_ARGV (which must hold the -chardev/-mon pair above, -daemonize and -pidfile
PIDFILE) with the socketpair end at FD, waits until READY_FILE holds "MEMCHECK READY", then
sends migrate-set-parameters mode=cpr-exec with a cpr-exec-command made from the process's own
/proc/PID/cmdline (no -daemonize, the serial file with append=on, -incoming file:STATEFILE
next to PIDFILE), and migrate. Logs every message on the same connection, as JSON lines like
cprexec.py, plus the descriptor tables before and after.
"""
import json
import os
import socket
import subprocess
import sys
import time

from cprexec import now, out


def fds(pid):
    res = {}
    for n in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
        try:
            res[n] = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            pass
    return res


def main():
    if len(sys.argv) < 6 or sys.argv[5] != "--":
        raise SystemExit(__doc__)
    fd, pidfile, ready, limit = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
    argv = sys.argv[6:]
    deadline = now() + limit
    mine, theirs = socket.socketpair()
    os.dup2(theirs.fileno(), fd)
    theirs.close()
    os.set_inheritable(fd, True)
    subprocess.run(argv, pass_fds=[fd], check=True)   # returns once QEMU daemonized
    os.close(fd)
    pid = int(open(pidfile).read())
    out("note", {"pid": pid})
    mine.settimeout(limit)
    f = mine.makefile("r")

    def send(c):
        out("old", {"sent": c})
        mine.sendall((json.dumps(c) + "\n").encode())

    def until(pred):
        for line in f:
            msg = json.loads(line)
            out("mon", msg)
            if pred(msg):
                return msg
        out("note", "monitor connection closed")
        return None

    until(lambda m: "QMP" in m)
    send({"execute": "qmp_capabilities"})
    until(lambda m: "return" in m)
    while "MEMCHECK READY" not in open(ready, errors="replace").read():
        if now() > deadline:
            out("note", "guest never ready")
            return 1
        time.sleep(0.2)
    out("fds-before", fds(pid))
    new = []
    skip = False
    for a in open("/proc/%d/cmdline" % pid).read().split("\0")[:-1]:
        if a == "-daemonize":
            continue
        if a.startswith("file,id=serial0,path="):
            a += ",append=on"
        new.append(a)
    state = os.path.join(os.path.dirname(pidfile), "vm.state")
    new += ["-incoming", "file:" + state]
    send({"execute": "migrate-set-capabilities",
          "arguments": {"capabilities": [{"capability": "events", "state": True}]}})
    until(lambda m: "return" in m or "error" in m)
    send({"execute": "migrate-set-parameters",
          "arguments": {"mode": "cpr-exec", "cpr-exec-command": new}})
    until(lambda m: "return" in m or "error" in m)
    send({"execute": "migrate", "arguments": {"uri": "file:" + state}})
    # The same connection: does the new image greet on it?
    if until(lambda m: "QMP" in m) is None:
        return 2
    send({"execute": "qmp_capabilities"})
    until(lambda m: "return" in m)
    send({"execute": "migrate-set-capabilities",
          "arguments": {"capabilities": [{"capability": "events", "state": True}]}})
    while now() < deadline:
        send({"execute": "query-status"})
        m = until(lambda m: "return" in m or "error" in m)
        if m is None:
            return 3
        if m.get("return", {}).get("status") == "running":
            break
        time.sleep(0.01)
    # "running" comes after the load, so every device descriptor is open by now.
    out("fds-after", fds(pid))
    send({"execute": "query-migrate"})
    until(lambda m: "return" in m or "error" in m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
