"""A database on a read-only file system: a one-line reason, and --read-only reads it."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import typing

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def read_only_mount(tmp_path: pathlib.Path) -> typing.Iterator[pathlib.Path]:
    """A folder holding a saga database, bind-mounted read-only (needs root)."""
    source = tmp_path / "source"
    source.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "saga_tui",
            "--db",
            str(source / "sagas.db"),
            "start",
            "OrderSaga",
            "--count",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode in (0, 1), run.stderr
    # Only the main file: no -wal/-shm, as on media written elsewhere.
    for extra in source.glob("sagas.db-*"):
        extra.unlink()
    target = tmp_path / "ro"
    target.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("bind mounts are not allowed here")
    try:
        remount = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(target)], capture_output=True
        )
        if remount.returncode != 0:
            pytest.skip("read-only remount is not allowed here")
        yield target / "sagas.db"
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


def saga_tui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saga_tui", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_read_only_file_system_gives_one_line_and_read_only_mode_works(
    read_only_mount: pathlib.Path,
) -> None:
    refused = saga_tui("--db", str(read_only_mount), "list")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"saga-tui: {read_only_mount}: on a read-only file system; open it with --read-only"
    ]
    listed = saga_tui("--db", str(read_only_mount), "--read-only", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    import json

    assert len(json.loads(listed.stdout)) == 2
