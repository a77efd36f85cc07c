#!/usr/bin/python3
"""memcheck-gen.py < LOG: for each `MEMCHECK CORRUPT page=P word=W expected=E got=G` line of a
guest's console (tests/guest/memcheck.c), which generation of the checker wrote the value
found: "page P: found generation N, expected M (K behind)" or "... K ahead", or "no
generation within R of M" (not a value the checker wrote there: another page's, zero, or
foreign data).

A word one generation or more behind is a stale copy of the page (a rewind: the page came from
an older state than the rest of memory); ahead, a write of a future the guest did not keep (a
COLO secondary's own run, past the checkpoint that replaced it). The standby tests print this
when a guest is found corrupt.
"""
import re
import sys

MASK = (1 << 64) - 1
RANGE = 4096


def pattern(gen, page, word):
    """The checker's value for (generation, page, word): memcheck.c's pattern()."""
    x = ((gen * 0x9E3779B97F4A7C15) ^ (page * 0xBF58476D1CE4E5B9) ^ (word * 0x94D049BB133111EB)) & MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK
    x ^= x >> 31
    return x or 1


def generation_of(value, page, word, expected):
    """The generation near `expected` whose pattern is `value`, or None."""
    for delta in range(RANGE + 1):
        for gen in (expected - delta, expected + delta):
            if gen >= 1 and pattern(gen, page, word) == value:
                return gen
    return None


LINE = re.compile(r"MEMCHECK CORRUPT page=(\d+) word=(\d+) expected=([0-9a-f]+) got=([0-9a-f]+)")


def main():
    for line in sys.stdin:
        m = LINE.search(line)
        if not m:
            continue
        page, word = int(m.group(1)), int(m.group(2))
        expected_value, got = int(m.group(3), 16), int(m.group(4), 16)
        # The checker's passes count from 1: its expected value's generation is found upwards.
        expected = next((g for g in range(1, 1 << 20) if pattern(g, page, word) == expected_value), None)
        if expected is None:
            print(f"page {page} word {word}: expected value of no generation (not memcheck's line?)")
            continue
        found = generation_of(got, page, word, expected)
        if found is None:
            print(f"page {page} word {word}: found no generation within {RANGE} of {expected}")
        elif found < expected:
            print(f"page {page} word {word}: found generation {found}, expected {expected} ({expected - found} behind)")
        else:
            print(f"page {page} word {word}: found generation {found}, expected {expected} ({found - expected} ahead)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
