"""The one masking module: URL passwords in text, URLs that do not parse, engine logs."""

from __future__ import annotations

import io
import logging
import pathlib
import re

import pytest

from engine.saga.failure import describe, error_info
from engine.saga.secrets import get_logger, mask_secrets, mask_url

ROOT = pathlib.Path(__file__).resolve().parents[2]
PW = "S3cretPW"


@pytest.mark.parametrize(
    ("text", "shown"),
    (
        (
            f"postgresql+asyncpg://user:{PW}@127.0.0.1:1/db",
            "postgresql+asyncpg://user:***@127.0.0.1",
        ),
        # An unescaped @ in the password: its tail must not stay visible.
        (f"cannot reach postgresql://u:p@{PW}@host/db.", "postgresql://u:***@host/db."),
        (f"redis://:{PW}@cache:6379/0 refused", "redis://:***@cache:6379/0 refused"),
        (f"a://u:{PW}@h and b://v:{PW}@i", "a://u:***@h and b://v:***@i"),
        (f"postgresql://u@h/db?sslmode=require&password={PW}: refused", "password=***: refused"),
        (f"host=h user=u password={PW} dbname=d", "password=*** dbname=d"),
        (f"dsn: PASSWORD = '{PW} x' port=5", "PASSWORD = *** port=5"),
        ("no secret in here: a://host/path", "no secret in here: a://host/path"),
    ),
)
def test_mask_secrets_hides_every_password_form(text: str, shown: str) -> None:
    masked = mask_secrets(text)
    assert PW not in masked
    assert shown in masked


@pytest.mark.parametrize(
    ("url", "shown"),
    (
        (f"postgresql+asyncpg://us er:{PW}@[::1/db", "postgresql+asyncpg://us er:***@[::1/db"),
        (f"postgresql://u:{PW}/x@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u@h/db?password={PW}", "postgresql://u@h/db?password=***"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ),
)
def test_mask_url_hides_the_password_of_a_url_that_does_not_parse(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_stored_errors_and_log_descriptions_are_masked() -> None:
    try:
        raise ConnectionError(f"cannot reach postgresql://u:p@{PW}@db/x")
    except ConnectionError as exc:
        info = error_info(exc)
        described = describe(exc)
    assert PW not in info.message + (info.traceback or "") + described
    assert "postgresql://u:***@db/x" in info.message


def test_an_engine_log_record_is_masked_for_any_handler_with_its_traceback() -> None:
    # The engine logs exceptions with exc_info and raw ``%s`` arguments; a handler the
    # application installs (not ours) must still never print the password.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    engine_log = logging.getLogger("engine")
    old = engine_log.level, engine_log.propagate
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = True
    try:
        import engine.saga.worker as worker

        try:
            raise ConnectionError(f"redis://cache:{PW}@10.0.0.9/0 refused")
        except ConnectionError as exc:
            worker.logger.warning("claiming from %s failed: %s", "x", exc, exc_info=True)
    finally:
        root.removeHandler(handler)
        engine_log.setLevel(old[0])
        engine_log.propagate = old[1]
    printed = stream.getvalue()
    assert "claiming from x failed: redis://cache:***@10.0.0.9/0 refused" in printed
    assert "Traceback" in printed and "ConnectionError: redis://cache:***@" in printed
    assert PW not in printed


def test_every_engine_logger_masks() -> None:
    # One way to get a logger in engine/ (and the dashboard): through the masking helper.
    module_logger = re.compile(r"^\w+ = logging\.getLogger\(", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("engine", "saga_tui")
        for path in sorted((ROOT / package).rglob("*.py"))
        if module_logger.search(path.read_text())
    ]
    assert offenders == []
    assert get_logger("engine.saga.worker").filters
