"""SQLite WAL checkpoints run on their own thread, not inside the commits sagas wait for."""

from __future__ import annotations

import pathlib
import struct
import threading
import uuid

from engine.saga.bootstrap import bootstrap
from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
from tests.engine.sagas import Ctx, Script, ScriptContainer, mapper
from tests.support import wait_for


def wal_progress(db: pathlib.Path) -> tuple[int, int]:
    """(frames in the WAL, frames already copied back) from the WAL index (the -shm file).

    Read from the file itself (sqlite.org/walformat.html: mxFrame at byte 16 of the
    header, nBackfill at byte 96), since asking SQLite would run a checkpoint.
    """
    data = pathlib.Path(f"{db}-shm").read_bytes()[:100]
    (max_frame,) = struct.unpack_from("=I", data, 16)
    (backfilled,) = struct.unpack_from("=I", data, 96)
    return max_frame, backfilled


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "saga-sqlite-checkpoint"]


async def test_the_wal_is_copied_back_soon_after_commits_by_a_thread_of_its_own(
    tmp_path: pathlib.Path,
) -> None:
    db = tmp_path / "sagas.db"
    storage = SqlAlchemySagaStorage.from_url(f"sqlite+aiosqlite:///{db}")
    mediator = bootstrap(ScriptContainer(Script()), sagas_mapper=mapper, saga_storage=storage)
    try:
        for number in range(10):
            await mediator.run(Ctx(f"o{number}"), saga_id=uuid.uuid4())
        frames, _ = wal_progress(db)
        # Far below SQLite's own 1,000-page autocheckpoint: only the thread copies them.
        assert 0 < frames < 1000

        async def copied_back() -> bool:
            frames, backfilled = wal_progress(db)
            return frames > 0 and backfilled == frames

        await wait_for(copied_back, what="the WAL checkpointed")
        assert len(checkpoint_threads()) == 1
    finally:
        await storage.close()
    assert checkpoint_threads() == []
