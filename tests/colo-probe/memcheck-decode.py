#!/usr/bin/env python3
"""memcheck-decode.py SERIAL_LOG [MIB]: for each page that tests/guest/memcheck reported
CORRUPT in SERIAL_LOG, says what the wrong word is: memcheck writes pattern(generation, page,
word) (a splitmix64 of the three), so a wrong value that is another generation of the same
page is a stale copy of that page, and one that is a nearby generation of another page is
that page's content seen through a wrong mapping (a stale guest page table, or a frame that
holds another page's data). Anything else is "not a memcheck value" (a page of the kernel's,
zeroes, a torn page). Searches generations up to 60 behind and 16 ahead (ahead: a moment of
the guest later than its own state, as a COLO secondary's run past a checkpoint, or a
primary's page newer than the CPU state sent with it), all pages of MIB (default 32). Used
for docs/standby-research.md ("Stopping the primary for the initial copy", "Failback
corrupts"), and by the standby tests when a guest is found corrupt (memcheck_diag)."""
import re
import sys

M = (1 << 64) - 1
BEHIND, AHEAD = 60, 16


def pattern(gen, page, word):  # tests/guest/memcheck.c, pattern()
    x = (gen * 0x9e3779b97f4a7c15 ^ page * 0xbf58476d1ce4e5b9 ^ word * 0x94d049bb133111eb) & M
    x ^= x >> 30
    x = (x * 0xbf58476d1ce4e5b9) & M
    x ^= x >> 27
    x = (x * 0x94d049bb133111eb) & M
    x ^= x >> 31
    return x or 1


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: memcheck-decode.py SERIAL_LOG [MIB]")
    pages = (int(sys.argv[2]) if len(sys.argv) == 3 else 32) * 256
    seen = set()
    rx = re.compile(r"CORRUPT page=(\d+) word=(\d+) expected=([0-9a-f]+) got=([0-9a-f]+)")
    for line in open(sys.argv[1], errors="replace"):
        m = rx.search(line)
        if not m or int(m[1]) in seen:
            continue
        page, word, exp, got = int(m[1]), int(m[2]), int(m[3], 16), int(m[4], 16)
        seen.add(page)
        gen = next((g for g in range(1, 100000) if pattern(g, page, word) == exp), None)
        if gen is None:
            print("page=%d word=%d: expected value is not a memcheck pattern" % (page, word))
            continue
        lo = max(0, gen - BEHIND)
        same = [g for g in range(lo, gen + AHEAD + 1) if pattern(g, page, word) == got]
        if same and same[0] > gen:
            print("page=%d word=%d gen=%d: the same page from later, generation %d (%d ahead)"
                  % (page, word, gen, same[0], same[0] - gen))
            continue
        if same:
            print("page=%d word=%d gen=%d: stale copy of the same page, generation %d (%d behind)"
                  % (page, word, gen, same[0], gen - same[0]))
            continue
        other = [(g, p) for g in range(lo, gen + AHEAD + 1) for p in range(pages) if pattern(g, p, word) == got]
        if other:
            g, p = other[0]
            print("page=%d word=%d gen=%d: holds page %d's word, generation %d (%+d): wrong mapping"
                  % (page, word, gen, p, g, g - gen))
        else:
            print("page=%d word=%d gen=%d: got=%016x is not a memcheck value nearby"
                  % (page, word, gen, got))


if __name__ == "__main__":
    main()
