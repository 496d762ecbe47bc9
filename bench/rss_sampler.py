"""Sample a running process's RSS (and its children's) every few seconds, with its progress.

    saga-tui --db /tmp/1m.db start OrderSaga --count 1000000 > /tmp/1m.out &
    python bench/rss_sampler.py $! /tmp/1m.out /tmp/rss.log 10

Writes one tab-separated line per sample until the process exits: seconds since the
start, lines in the output file so far (results printed), VmRSS of the process, VmRSS of
its children, and its peak RSS (VmHWM), all in KiB. Linux only (reads /proc).
"""

from __future__ import annotations

import os
import sys
import time


def _status(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/PID/status; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [
            int(child)
            for task in os.listdir(f"/proc/{pid}/task")
            for child in open(f"/proc/{pid}/task/{task}/children").read().split()
        ]
    except OSError:
        return []


def _lines(path: str) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return -1


def main() -> int:
    """Sample until the process exits."""
    pid, out_file, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    every = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    started = time.monotonic()
    with open(log, "a") as fh:
        fh.write("elapsed_s\tresults\tself_rss_kb\tchildren_rss_kb\tpeak_hwm_kb\n")
        while (rss := _status(pid, "VmRSS")) is not None:
            children = sum(_status(child, "VmRSS") or 0 for child in _children(pid))
            peak = _status(pid, "VmHWM") or 0
            elapsed = time.monotonic() - started
            fh.write(f"{elapsed:.0f}\t{_lines(out_file)}\t{rss}\t{children}\t{peak}\n")
            fh.flush()
            time.sleep(every)
        fh.write(f"# process gone after {time.monotonic() - started:.0f}s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
