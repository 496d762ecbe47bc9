"""What a driver error means for a run: the saga's data was refused, or the database is down.

A run treats the two differently (DESIGN.md section 3): a checkpoint refused for the
saga's data (a value, a size, a constraint) becomes the step's failure and compensation
runs; a database that cannot take writes (full, locked past the timeout, gone) stops the
run, leaving the saga for recovery. The message keeps the driver's own first line.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

from engine.saga.errors import SagaDataError, SagaError, StorageUnavailableError
from engine.saga.failure import safe_text

_DATA = (sqlite3.IntegrityError, sqlite3.DataError, ValueError, TypeError, OverflowError)
_DOWN = (sqlite3.OperationalError, sqlite3.InterfaceError, sqlite3.DatabaseError, OSError)


def reason(exc: BaseException) -> str:
    """The driver's first line (or the exception type), taken safely."""
    orig = getattr(exc, "orig", None) or exc
    lines = safe_text(orig, 1000).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def classify(exc: Exception, label: str = "") -> Exception:
    """``exc`` as the engine's error: SagaDataError, StorageUnavailableError, or itself."""
    if isinstance(exc, SagaError):
        return exc
    where = f"{label}: " if label else ""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError) or isinstance(orig, _DATA):
        return SagaDataError(f"{where}the database refused the saga's data: {reason(exc)}")
    if isinstance(exc, sa.exc.StatementError) and not isinstance(exc, sa.exc.DBAPIError):
        # Raised while binding a value, before anything was sent.
        return SagaDataError(f"{where}the database refused the saga's data: {reason(exc)}")
    if isinstance(exc, sa.exc.DBAPIError | ConnectionError) or isinstance(orig, _DOWN):
        return StorageUnavailableError(f"{where}the database is unavailable: {reason(exc)}")
    return exc
