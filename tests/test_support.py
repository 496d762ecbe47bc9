"""The test support helpers themselves."""

from __future__ import annotations


def test_read_line_sees_two_lines_written_at_once() -> None:
    """The support reader must not lose a line that arrived in the same chunk."""
    import subprocess
    import sys

    from tests.support import read_line

    code = "import sys, time; sys.stdout.write('a\\nb\\n'); sys.stdout.flush(); time.sleep(30)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert (read_line(proc, 10), read_line(proc, 10)) == ("a", "b")
    finally:
        proc.kill()
        proc.wait()
