"""``python -m sample_sagas``: the load generator, and ``check`` of the ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import typing

from engine.saga.failure import safe_text
from engine.saga.secrets import mask_secrets
from sample_sagas.services import Knobs

EXIT_OK, EXIT_BAD_LEDGER, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate is between 0 and 1, not {text}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"between 0.5 and 3600 seconds, not {text}")
    return value


def _latency(text: str) -> tuple[float, float]:
    lo_text, _, hi_text = text.partition("-")
    try:
        lo = float(lo_text)
        hi = float(hi_text) if hi_text else lo
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LO-HI milliseconds, like 50-400: {text!r}"
        ) from None
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"expected 0 <= LO <= HI: {text!r}")
    return lo, hi


def _db_url(path: str) -> str:
    if "://" in path:
        return path
    return "sqlite+aiosqlite:///" + os.path.abspath(path)


def load_parser() -> argparse.ArgumentParser:
    """Options of the load generator."""
    knobs = Knobs()
    p = _Parser(prog="python -m sample_sagas", description="Run sample sagas against a database.")
    p.add_argument("--db", default="sagas.db", help="database file or URL (default sagas.db)")
    p.add_argument("--count", type=_positive, default=1000, help="sagas to run (default 1000)")
    p.add_argument("--concurrency", type=_positive, default=50, help="sagas at once (default 50)")
    p.add_argument("--failure-rate", type=_rate, default=knobs.failure_rate)
    p.add_argument(
        "--compensation-failure-rate", type=_rate, default=knobs.compensation_failure_rate
    )
    p.add_argument("--refund-decline-rate", type=_rate, default=knobs.refund_decline_rate)
    p.add_argument("--latency-ms", type=_latency, default=knobs.latency_ms, metavar="LO-HI")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--lease-seconds",
        type=_seconds,
        default=knobs.lease_seconds,
        help=f"runner lease without renewal (default {knobs.lease_seconds:g})",
    )
    p.add_argument(
        "--block-ms",
        type=float,
        default=0.0,
        help="chaos: each service call first blocks the event loop this long",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def check_parser() -> argparse.ArgumentParser:
    """Options of ``check``."""
    p = _Parser(
        prog="python -m sample_sagas check",
        description="Print every saga whose ledger disagrees with its status; exit 1 if any.",
    )
    p.add_argument("--db", default="sagas.db", help="database file or URL (default sagas.db)")
    return p


def run_load_command(argv: list[str]) -> int:
    """The load generator."""
    from sample_sagas.load import main_async

    args = load_parser().parse_args(argv)
    knobs = Knobs(
        failure_rate=args.failure_rate,
        compensation_failure_rate=args.compensation_failure_rate,
        refund_decline_rate=args.refund_decline_rate,
        latency_ms=args.latency_ms,
        seed=args.seed,
        lease_seconds=args.lease_seconds,
        block_seconds=max(0.0, args.block_ms) / 1000.0,
    )
    try:
        progress = asyncio.run(
            main_async(
                _db_url(args.db),
                count=args.count,
                concurrency=args.concurrency,
                knobs=knobs,
                seed=args.seed,
            ),
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        text = (safe_text(exc).splitlines() or [type(exc).__name__])[0]
        print(f"sample_sagas: {ascii_safe(mask_secrets(text))}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(progress.as_dict()) if args.json else progress.summary())
    if progress.gave_up:
        print(f"sample_sagas: {ascii_safe(mask_secrets(progress.gave_up))}", file=sys.stderr)
    return EXIT_OK if progress.errors == 0 else EXIT_BAD_LEDGER


def run_check_command(argv: list[str]) -> int:
    """Compare the ledger with every saga's status; report the effects it refused."""
    args = check_parser().parse_args(argv)
    if "://" in args.db and not args.db.startswith("sqlite"):
        target = args.db
    else:
        path = os.path.abspath(args.db.split(":///", 1)[-1])
        if not os.path.isfile(path):
            print(f"sample_sagas check: no database file at {mask_secrets(path)}", file=sys.stderr)
            return EXIT_USAGE
        target = path
    try:
        checked, bad, refused = asyncio.run(_check(target))
    except Exception as exc:
        text = (safe_text(exc).splitlines() or [type(exc).__name__])[0]
        print(f"sample_sagas check: {ascii_safe(mask_secrets(text))}", file=sys.stderr)
        return EXIT_USAGE
    for item in bad:
        print(ascii_safe(item.describe()))
    print(f"checked {checked} sagas: {len(bad)} disagree with the ledger", file=sys.stderr)
    if refused:
        # Not a disagreement: the ledger did its job (a runner that lost its lease).
        print(
            f"the ledger refused {len(refused)} stale effects: {ascii_safe(refused[0][4])}"
            + (" ..." if len(refused) > 1 else ""),
            file=sys.stderr,
        )
    return EXIT_BAD_LEDGER if bad else EXIT_OK


async def _check(target: str) -> tuple[int, list[typing.Any], list[typing.Any]]:
    """(sagas checked, disagreements, refused effects) of a SQLite file or a server URL."""
    from engine.saga.storage.sqlalchemy import SqlAlchemySagaStorage
    from sample_sagas.check import find_disagreements
    from sample_sagas.ledger import read_ledger, read_refused

    if "://" not in target:
        storage = SqlAlchemySagaStorage.from_url(_db_url(target), read_only=True)
        try:
            # Sagas first, ledger second: a saga read as terminal has all its rows committed.
            checked, bad = await find_disagreements(storage, _LazyLedger(target, read_ledger))
        finally:
            await storage.close()
        return checked, bad, read_refused(target)
    from sample_sagas.ledger_pg import PostgresLedger

    storage = SqlAlchemySagaStorage.from_url(target)
    ledger = PostgresLedger(target)
    try:
        # The rows are fetched after the sagas were read (find_disagreements awaits them).
        checked, bad = await find_disagreements(storage, ledger.rows)
        return checked, bad, await ledger.refused()
    finally:
        await ledger.aclose()
        await storage.close()


class _LazyLedger:
    def __init__(self, path: str, reader: typing.Callable[[str], typing.Any]) -> None:
        self.path = path
        self.reader = reader

    def __iter__(self) -> typing.Iterator[typing.Any]:
        return iter(self.reader(self.path))


def ascii_safe(text: str) -> str:
    """Text with control characters escaped, so stored data cannot drive the terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to ``check`` or the load generator."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Failed compensations are the demo's point, counted in the summary: no log spam.
    logging.getLogger("engine").addHandler(logging.NullHandler())
    logging.getLogger("engine").propagate = False
    if argv and argv[0] == "check":
        return run_check_command(argv[1:])
    if argv and argv[0] == "load":
        argv = argv[1:]
    return run_load_command(argv)


if __name__ == "__main__":
    sys.exit(main())
