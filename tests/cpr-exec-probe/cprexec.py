#!/usr/bin/python3
"""cprexec.py: drive one cpr-exec of a running QEMU over QMP and say what was seen (research
probe for docs/cpr-exec-research.md; standard library only).

    cprexec.py QMP_SOCKET STATE_URI NEWSOCK TIMEOUT_S -- NEW_ARGV...

Connects to QMP_SOCKET, sets mode=cpr-exec and cpr-exec-command=NEW_ARGV, issues
migrate STATE_URI and logs every message until the monitor closes (the exec) or TIMEOUT_S.
Then waits (up to TIMEOUT_S) until NEWSOCK accepts a connection again and asks the
new process for query-status and query-migrate. One JSON object per line on stdout:
{"t": host CLOCK_MONOTONIC seconds, "side": "old"|"new", "msg": ...} plus "note" lines.
"""
import json
import os
import socket
import sys
import time


def now():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def out(side, msg):
    print(json.dumps({"t": round(now(), 6), "wall": round(time.time(), 6), "side": side,
                      "msg": msg}), flush=True)


def session(path, deadline):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(max(0.1, deadline - now()))
    s.connect(path)
    return s, s.makefile("r")


def reply(side, f):
    """Log lines up to the answer to the last command; events are logged on the way."""
    for line in f:
        msg = json.loads(line)
        out(side, msg)
        if "return" in msg or "error" in msg:
            return msg
    return None


def cmd(side, s, f, name, args=None):
    c = {"execute": name}
    if args is not None:
        c["arguments"] = args
    out(side, {"sent": c})
    s.sendall((json.dumps(c) + "\n").encode())
    return reply(side, f)


def main():
    if len(sys.argv) < 6 or sys.argv[5] != "--":
        raise SystemExit(__doc__)
    sock, uri, newsock, limit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    argv = sys.argv[6:]
    deadline = now() + limit
    s, f = session(sock, deadline)
    out("old", json.loads(f.readline()))
    cmd("old", s, f, "qmp_capabilities")
    cmd("old", s, f, "migrate-set-capabilities",
        {"capabilities": [{"capability": "events", "state": True}]})
    r = cmd("old", s, f, "migrate-set-parameters",
            {"mode": "cpr-exec", "cpr-exec-command": argv})
    if r is None or "error" in r:
        out("note", "migrate-set-parameters refused")
        return 1
    cmd("old", s, f, "migrate", {"uri": uri})
    # Everything the old process says until it closes the monitor (or the deadline).
    eof = False
    try:
        for line in f:
            out("old", json.loads(line))
            if now() > deadline:
                break
        else:
            eof = True
    except (socket.timeout, OSError) as e:
        out("note", "old monitor: %s" % e)
    if eof:
        out("note", "old monitor closed")
    else:
        # Still open: the old process did not exec; ask it where it stands.
        try:
            s.settimeout(5)
            cmd("old", s, f, "query-status")
            cmd("old", s, f, "query-migrate")
        except OSError as e:
            out("note", "old monitor: %s" % e)
        return 2
    s.close()
    # The new image binds the path afresh (a new socket inode). A connection made before that
    # lands in the old listening socket's backlog and is reset when the exec closes it: retry
    # until a greeting arrives.
    while True:
        try:
            s, f = session(newsock, deadline)
            s.settimeout(max(1, deadline - now()))
            line = f.readline()
            if line:
                break
            s.close()
        except OSError as e:
            if now() > deadline:
                out("note", "new socket never answered: %s" % e)
                return 3
        time.sleep(0.002)
    out("note", "new monitor greeted")
    out("new", json.loads(line))
    cmd("new", s, f, "qmp_capabilities")
    cmd("new", s, f, "query-status")
    cmd("new", s, f, "query-migrate")
    # Until it runs (it resumes by itself when the guest ran before the migrate).
    # Polled quietly: only a change of state is logged.
    last = None
    while now() < deadline:
        c = {"execute": "query-status"}
        s.sendall((json.dumps(c) + "\n").encode())
        for line in f:
            r = json.loads(line)
            if "return" in r or "error" in r:
                break
            out("new", r)
        st = r.get("return", {}).get("status")
        if st != last:
            out("new", r)
            last = st
        if st == "running":
            out("note", "new image running")
            return 0
        time.sleep(0.01)
    out("note", "new image not running at the deadline")
    return 4


if __name__ == "__main__":
    sys.exit(main())
