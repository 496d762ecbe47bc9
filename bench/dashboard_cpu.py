"""CPU of the dashboard as a person runs it: in a real terminal (a pty), for N seconds.

    python bench/dashboard_cpu.py demo  [--size 160x45] [--seconds 30]
    python bench/dashboard_cpu.py idle  [--size 160x45] [--seconds 30]
    python bench/dashboard_cpu.py watch [--size 160x45] [--seconds 30] [--count 2000]

``demo`` is ``saga-tui --demo`` on a new database; ``idle`` the dashboard on a database
nobody writes; ``watch`` the dashboard while another process (the load generator) writes
``--count`` sagas. The figures are the dashboard process's user+system CPU time over
the wall time as a share of one core (``/proc/PID/stat``; Linux only): from its start
(imports and the first paint included), and after its first 5 seconds.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pathlib
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
SETTLE = 5.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def in_a_terminal(args: list[str], width: int, height: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``args`` on a new pty of the given size; its output is read and thrown away."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(width), "LINES": str(height)}
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env, start_new_session=True
    )
    os.close(slave)

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()
    return proc, master


def main() -> None:
    """Run one mode and print the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("demo", "idle", "watch"))
    parser.add_argument("--size", default="160x45")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    db = pathlib.Path(tempfile.mkdtemp()) / "sagas.db"
    python = sys.executable
    writer = None
    if args.mode != "demo":
        # A database with some history, so the screen has rows.
        subprocess.run(
            [
                python,
                "-m",
                "sample_sagas",
                "--db",
                str(db),
                "--count",
                "200",
                "--latency-ms",
                "0-1",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    command = [python, "-m", "saga_tui", "--db", str(db)]
    if args.mode == "demo":
        command.append("--demo")
    start = time.monotonic()
    proc, master = in_a_terminal(command, width, height)
    try:
        if args.mode == "watch":
            time.sleep(1.0)  # the dashboard is up before the writer starts
            writer = subprocess.Popen(
                [python, "-m", "sample_sagas", "--db", str(db), "--count", str(args.count),
                 "--concurrency", "8", "--latency-ms", "5-50"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        time.sleep(max(0.0, SETTLE - (time.monotonic() - start)))
        settled_cpu, settled = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(max(0.0, args.seconds - (time.monotonic() - start)))
        used, end = cpu_seconds(proc.pid), time.monotonic()
    finally:
        if writer is not None:
            writer.terminate()
            writer.wait()
        proc.terminate()
        proc.wait(timeout=10)
        os.close(master)
    wall = end - start
    steady = 100 * (used - settled_cpu) / (end - settled)
    print(
        f"{args.mode} at {width}x{height}: {100 * used / wall:.1f} % of one core over "
        f"{wall:.0f} s from its start ({used:.1f} s CPU); {steady:.1f} % after the first "
        f"{SETTLE:.0f} s"
    )


if __name__ == "__main__":
    main()
