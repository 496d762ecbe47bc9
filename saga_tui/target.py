"""What a command works on: the database URL, the storage it opens, the user's app factory.

Every failure here is a :class:`UsageError` with a one-line reason, so the command line
can print it and exit 2, and the dashboard can show it, without a traceback.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
import typing

import sqlalchemy as sa

from engine.saga.errors import SagaStorageError
from engine.saga.mediator import SagaMediator
from engine.saga.secrets import mask_url
from engine.saga.storage.protocol import ISagaStorage
from saga_tui.textfmt import one_line

DEFAULT_DB = "sagas.db"
DEFAULT_APP = "sample_sagas:create_mediator"

AppFactory = typing.Callable[[ISagaStorage], SagaMediator]


class UsageError(Exception):
    """Bad input from the user; the message is one line."""


def resolve_db_url(arg: str | None) -> str:
    """A SQLAlchemy URL from ``--db``: a plain path becomes an absolute SQLite URL."""
    if arg is None or arg == "":
        arg = DEFAULT_DB
    if "://" in arg:
        try:
            sa.make_url(arg)
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise UsageError(f"--db {mask_url(arg)}: not a database URL ({one_line(exc)})") from exc
        return arg
    return "sqlite+aiosqlite:///" + os.path.abspath(os.path.expanduser(arg))


def sqlite_file(url: str) -> str | None:
    """The file a SQLite URL points at, None for other databases or in-memory SQLite."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _check_sqlite_file(path: str, *, must_exist: bool, read_only: bool) -> None:
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a database file")
    if not os.path.exists(path):
        if must_exist or read_only:
            raise UsageError(f"{path}: no such database file")
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            raise UsageError(f"{path}: folder {parent} does not exist")
        return
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: permission denied ({_who_may(path)}); you cannot read it")
    if not read_only and not os.access(path, os.W_OK):
        # SQLite would only say "attempt to write a readonly database".
        if _read_only_fs(path):
            raise UsageError(f"{path}: on a read-only file system; open it with --read-only")
        raise UsageError(
            f"{path}: permission denied ({_who_may(path)}); you cannot write it: "
            "--read-only opens it for reading"
        )
    try:
        with open(path, "rb") as fh:
            header = fh.read(16)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({one_line(exc)})") from exc
    # An empty file is a new SQLite database; anything else must carry SQLite's magic.
    if header and header != b"SQLite format 3\x00":
        raise UsageError(f"{path}: not a SQLite database")


def _read_only_fs(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _who_may(path: str) -> str:
    """``owner root, mode 0644``: why this user may not write (or read) the file."""
    info = os.stat(path)
    try:
        import pwd

        owner = pwd.getpwuid(info.st_uid).pw_name
    except (ImportError, KeyError):
        owner = str(info.st_uid)
    return f"owner {owner}, mode {info.st_mode & 0o777:04o}"


def open_storage(
    url: str,
    read_only: bool = False,
    *,
    must_exist: bool = False,
) -> ISagaStorage:
    """Open the saga storage at ``url``; a missing SQLite file is created unless told not to."""
    path = sqlite_file(url)
    if path is not None:
        _check_sqlite_file(path, must_exist=must_exist, read_only=read_only)
    try:
        from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage

        return SqlAlchemySagaStorage.from_url(url, read_only=read_only)
    except ModuleNotFoundError as exc:
        raise UsageError(f"{_label(url)}: database driver {exc.name} is not installed") from exc
    except (sqlite3.Error, sa.exc.SQLAlchemyError, OSError, ValueError) as exc:
        raise UsageError(f"{_label(url)}: {one_line(exc)}") from exc
    except SagaStorageError as exc:
        # SchemaError and friends already carry the file name and a one-line reason.
        raise UsageError(one_line(exc)) from exc


def _label(url: str) -> str:
    path = sqlite_file(url)
    if path is not None:
        return path
    return mask_url(url)


def label(url: str) -> str:
    """A short name for the title line: the file name, or the kind of database."""
    path = sqlite_file(url)
    return os.path.basename(path) if path else url.split("://", 1)[0]


def load_app_factory(spec: str) -> AppFactory:
    """Import ``module:factory`` (``--app``), a callable ``f(storage) -> SagaMediator``."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--app {spec!r}: expected module:factory, e.g. {DEFAULT_APP}")
    # Like ``python -m`` (and uvicorn's --app-dir), find the user's modules in the cwd:
    # the console script's sys.path does not hold it.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: typing.Any = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"--app {spec}: cannot import {module_name}: {one_line(exc)}") from exc
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise UsageError(f"--app {spec}: {module_name} has no attribute {attr}")
    if not callable(target):
        raise UsageError(f"--app {spec}: {attr} is not callable")
    return typing.cast(AppFactory, target)


def build_mediator(factory: AppFactory, storage: ISagaStorage, spec: str = "--app") -> SagaMediator:
    """Call the app factory; its failure or a wrong return type is a UsageError."""
    try:
        mediator = factory(storage)
    except Exception as exc:
        raise UsageError(f"--app {spec}: the factory failed: {one_line(exc)}") from exc
    if not isinstance(mediator, SagaMediator):
        raise UsageError(
            f"--app {spec}: the factory returned {type(mediator).__name__}, not a SagaMediator"
        )
    return mediator
