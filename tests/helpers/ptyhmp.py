#!/usr/bin/env python3
"""ptyhmp.py PTS [--hold FILE]: talk to an HMP monitor on a pty, as a user in `screen` would.
Sends "info status", prints what came back. With --hold, keeps the pty open after that, and
each time FILE appears sends "info status" again, prints the answer and removes FILE; ends
when FILE contains "quit". Prints one line per answer: "ANSWER <text>" or "NO-ANSWER"."""
import os, sys, time, select

def ask(fd):
    os.write(fd, b"info status\r")
    end, got = time.time() + 5, b""
    while time.time() < end and b"VM status" not in got:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                got += os.read(fd, 4096)
            except OSError:
                break
    line = [l for l in got.decode(errors="replace").splitlines() if "VM status" in l]
    print("ANSWER " + line[0].strip() if line else "NO-ANSWER", flush=True)

fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
import termios, tty
tty.setraw(fd)
ask(fd)
if len(sys.argv) > 3 and sys.argv[2] == "--hold":
    flag = sys.argv[3]
    while True:
        if os.path.exists(flag):
            what = open(flag).read().strip()
            os.unlink(flag)
            if what == "quit":
                break
            ask(fd)
        time.sleep(0.05)
os.close(fd)
