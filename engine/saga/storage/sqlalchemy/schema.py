"""Table definitions: python-cqrs's two tables as the base, plus what the product needs.

The python-cqrs columns come first and keep python-cqrs's types, so its databases are
migrated by appending columns and a fresh schema is identical to a migrated one.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 3
"""v1 is python-cqrs's layout (no version table); v2 adds leases, errors, audit, counts;
v3 appends what later features declare here (columns at the end of their table, new
tables and indexes): the migration adds whatever is missing."""

metadata = sa.MetaData()

saga_executions = sa.Table(
    "saga_executions",
    metadata,
    # python-cqrs columns, same types and defaults.
    sa.Column("id", sa.Uuid, primary_key=True, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
    ),
    sa.Column(
        "updated_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
    ),
    sa.Column("recovery_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    # v2 columns: all nullable or defaulted so ALTER TABLE ADD COLUMN can append them.
    sa.Column("lease_owner", sa.String(255), nullable=True),
    sa.Column("lease_expires", sa.Float, nullable=True),
    sa.Column("requested_action", sa.String(32), nullable=True),
    sa.Column("step_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("steps_done", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("current_step", sa.String(255), nullable=True),
    sa.Column("error_type", sa.String(255), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("error_traceback", sa.Text, nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    # v3: the fencing token, bumped by every creation and claim; writes are conditioned on it.
    sa.Column("fence", sa.Integer, nullable=False, server_default=sa.text("0")),
    # v3 columns (appended): the business key, and the failure the saga is grouped by.
    sa.Column("search_key", sa.String(255), nullable=True),
    sa.Column("failure_key", sa.String(32), nullable=True),
    sa.Column("failure_step", sa.String(255), nullable=True),
    sa.Column("failure_type", sa.String(255), nullable=True),
    sa.Column("failure_message", sa.Text, nullable=True),
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
)

# One index per dashboard query; (created_at, id) is the keyset order of every page.
SAGA_INDEXES = (
    sa.Index(
        "ix_saga_executions_status_created",
        saga_executions.c.status,
        saga_executions.c.created_at,
        saga_executions.c.id,
    ),
    sa.Index("ix_saga_executions_created", saga_executions.c.created_at, saga_executions.c.id),
    sa.Index(
        "ix_saga_executions_name_created",
        saga_executions.c.name,
        saga_executions.c.created_at,
        saga_executions.c.id,
    ),
    sa.Index(
        "ix_saga_executions_status_updated", saga_executions.c.status, saga_executions.c.updated_at
    ),
    sa.Index("ix_saga_executions_lease_owner", saga_executions.c.lease_owner),
    # Text search scans only sagas with an error, inside the index (covering, partial).
    sa.Index(
        "ix_saga_executions_errors",
        saga_executions.c.created_at,
        saga_executions.c.id,
        saga_executions.c.error_type,
        saga_executions.c.error_message,
        sqlite_where=saga_executions.c.error_type.is_not(None),
    ).ddl_if(dialect="sqlite"),
    # PostgreSQL caps a btree entry near 2.7 kB, so long messages stay out of its index.
    sa.Index(
        "ix_saga_executions_errors_pg",
        saga_executions.c.created_at,
        saga_executions.c.id,
        postgresql_where=saga_executions.c.error_type.is_not(None),
    ).ddl_if(dialect="postgresql"),
    # Stranded sagas: unfinished ones by lease expiry, owners read from the index.
    sa.Index(
        "ix_saga_executions_lease",
        saga_executions.c.status,
        saga_executions.c.lease_expires,
        saga_executions.c.lease_owner,
    ),
    # Business keys (key:ord-9ca8, and plain text): a prefix is an index range.
    sa.Index(
        "ix_saga_executions_search_key",
        saga_executions.c.search_key,
        sqlite_where=saga_executions.c.search_key.is_not(None),
        postgresql_where=saga_executions.c.search_key.is_not(None),
    ),
    # Failure groups: counted by (key, status) in the index's order; first and last seen
    # and the newest example are each one seek per (key, status); a group's sagas a range.
    sa.Index(
        "ix_saga_executions_failure_cause",
        saga_executions.c.failure_key,
        saga_executions.c.status,
        saga_executions.c.failed_at,
        sqlite_where=saga_executions.c.failure_key.is_not(None),
        postgresql_where=saga_executions.c.failure_key.is_not(None),
    ),
    # The groups' last hour: the failures since a moment are one range, whatever their cause.
    sa.Index(
        "ix_saga_executions_failed_at",
        saga_executions.c.failed_at,
        saga_executions.c.failure_key,
        saga_executions.c.status,
        sqlite_where=saga_executions.c.failed_at.is_not(None),
        postgresql_where=saga_executions.c.failed_at.is_not(None),
    ),
    # The header's pulse: sagas that ended in the last minutes, by status.
    sa.Index(
        "ix_saga_executions_finished",
        saga_executions.c.finished_at,
        saga_executions.c.status,
        sqlite_where=saga_executions.c.finished_at.is_not(None),
        postgresql_where=saga_executions.c.finished_at.is_not(None),
    ),
)

saga_logs = sa.Table(
    "saga_logs",
    metadata,
    # INTEGER PRIMARY KEY is SQLite's rowid alias, so ids are assigned in insert order;
    # python-cqrs's BIGINT identity is not, and fails on SQLite.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.Uuid, sa.ForeignKey("saga_executions.id"), nullable=False),
    sa.Column("step_name", sa.String(255), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("status", sa.String(11), nullable=False),
    sa.Column("details", sa.Text, nullable=True),
    sa.Column(
        "created_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
    ),
    sa.Column("error_type", sa.String(255), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("error_traceback", sa.Text, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("duration_ms", sa.Float, nullable=True),
    sqlite_autoincrement=False,
)

LOG_INDEXES = (sa.Index("ix_saga_logs_saga_id", saga_logs.c.saga_id, saga_logs.c.id),)

saga_audit = sa.Table(
    "saga_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.Uuid, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("os_user", sa.String(255), nullable=False, server_default=""),
    sa.Column("host", sa.String(255), nullable=False, server_default=""),
    sa.Column("outcome", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_saga_audit_saga_id", "saga_id", "id"),
)

# The outbox: the events a step produced, written with its COMPLETED checkpoint. The id
# (SQLite's rowid) is the delivery order within a saga.
saga_events = sa.Table(
    "saga_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.Uuid, sa.ForeignKey("saga_executions.id"), nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("step_name", sa.String(255), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("event_type", sa.String(255), nullable=False),
    sa.Column("event_name", sa.String(255), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("claim_owner", sa.String(255), nullable=True),
    sa.Column("claim_expires", sa.Float, nullable=True),
    # A saga's events in order (the detail, a deliverer's claim) ...
    sa.Index("ix_saga_events_saga", "saga_id", "id"),
    # ... and by state: the header's pending/failed counts, the sagas left to deliver.
    sa.Index("ix_saga_events_state", "state", "saga_id", "id"),
    sqlite_autoincrement=False,
)

# ---- the fleet: workers and operator requests (times are epoch seconds, as leases) ----

saga_workers = sa.Table(
    "saga_workers",
    metadata,
    # The process's lease owner id (host:pid:start): sagas it runs carry it as lease_owner.
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("app", sa.String(255), nullable=False, server_default=""),
    sa.Column("saga_types", sa.Text, nullable=False, server_default=""),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("running", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("served", sa.Integer, nullable=False, server_default=sa.text("0")),
    # A dashboard serving requests only while no dedicated worker lives is not dedicated.
    sa.Column("dedicated", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("stopped_at", sa.Float, nullable=True),
)

saga_requests = sa.Table(
    "saga_requests",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("saga_name", sa.String(255), nullable=True),
    sa.Column("context", sa.JSON, nullable=True),
    sa.Column("count", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("requester", sa.String(255), nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(12), nullable=False, server_default="PENDING"),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Index("ix_saga_requests_created", "created_at"),
    sa.Index("ix_saga_requests_state", "state"),
)

saga_request_items = sa.Table(
    "saga_request_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Uuid, nullable=False),
    sa.Column("saga_id", sa.Uuid, nullable=False),
    sa.Column("saga_name", sa.String(255), nullable=False),
    # Who has the pair now, and until when (renewed by its heartbeat); a free pair with a
    # claim_expires in the future waits out a backoff.
    sa.Column("claimed_by", sa.String(255), nullable=True),
    sa.Column("claim_expires", sa.Float, nullable=True),
    sa.Column("taken_by", sa.String(255), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("ok", sa.Boolean, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Index("ix_saga_request_items_request", "request_id", "id"),
    sa.Index("ix_saga_request_items_open", "outcome", "claim_expires"),
    # The sagas one worker served (the ``worker:`` filter).
    sa.Index("ix_saga_request_items_taken", "taken_by", "saga_id"),
)
# A claim takes the oldest open pairs: an index walked in id order, where they are, not
# a read and a sort of every open pair (a bulk action on 100,000 sagas, half of them
# done: 24 ms a claim on SQLite, 13-67 ms on PostgreSQL, against under 0.1 ms). Each
# database uses a different shape: SQLite ignores the partial one, and PostgreSQL does
# not take IS NULL as fixing the first column of the other.
sa.Index(
    "ix_saga_request_items_open_id", saga_request_items.c.outcome, saga_request_items.c.id
).ddl_if(dialect="sqlite")
sa.Index(
    "ix_saga_request_items_open_pg",
    saga_request_items.c.id,
    postgresql_where=saga_request_items.c.outcome.is_(None),
).ddl_if(dialect="postgresql")

# Kept exact by triggers, so counting a million sagas reads six rows.
saga_status_counts = sa.Table(
    "saga_status_counts",
    metadata,
    sa.Column("status", sa.String(12), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False, server_default=sa.text("0")),
)

# Failure groups: sagas per (cause, status), kept exact by triggers, so the groups view
# reads a row per group instead of counting every failed saga's index entry.
saga_failure_counts = sa.Table(
    "saga_failure_counts",
    metadata,
    sa.Column("failure_key", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(12), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False, server_default=sa.text("0")),
)

saga_schema_version = sa.Table(
    "saga_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
)

# Counts triggers are DDL, one flavour per dialect; queries stay dialect-neutral.
_SQLITE_COUNT_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS trg_saga_count_insert AFTER INSERT ON saga_executions
BEGIN
  INSERT OR IGNORE INTO saga_status_counts (status, n) VALUES (NEW.status, 0);
  UPDATE saga_status_counts SET n = n + 1 WHERE status = NEW.status;
END""",
    """CREATE TRIGGER IF NOT EXISTS trg_saga_count_update
AFTER UPDATE OF status ON saga_executions WHEN OLD.status IS NOT NEW.status
BEGIN
  UPDATE saga_status_counts SET n = n - 1 WHERE status = OLD.status;
  INSERT OR IGNORE INTO saga_status_counts (status, n) VALUES (NEW.status, 0);
  UPDATE saga_status_counts SET n = n + 1 WHERE status = NEW.status;
END""",
    """CREATE TRIGGER IF NOT EXISTS trg_saga_count_delete AFTER DELETE ON saga_executions
BEGIN
  UPDATE saga_status_counts SET n = n - 1 WHERE status = OLD.status;
END""",
)

# A saga counts for its (failure_key, status) while it has a failure key.
_SQLITE_FAILURE_CHANGED = "(OLD.status IS NOT NEW.status OR OLD.failure_key IS NOT NEW.failure_key)"
_SQLITE_FAILURE_TRIGGERS = (
    """CREATE TRIGGER IF NOT EXISTS trg_saga_failure_insert AFTER INSERT ON saga_executions
WHEN NEW.failure_key IS NOT NULL
BEGIN
  INSERT OR IGNORE INTO saga_failure_counts (failure_key, status, n)
    VALUES (NEW.failure_key, NEW.status, 0);
  UPDATE saga_failure_counts SET n = n + 1
    WHERE failure_key = NEW.failure_key AND status = NEW.status;
END""",
    f"""CREATE TRIGGER IF NOT EXISTS trg_saga_failure_leave
AFTER UPDATE OF status, failure_key ON saga_executions
WHEN OLD.failure_key IS NOT NULL AND {_SQLITE_FAILURE_CHANGED}
BEGIN
  UPDATE saga_failure_counts SET n = n - 1
    WHERE failure_key = OLD.failure_key AND status = OLD.status;
END""",
    f"""CREATE TRIGGER IF NOT EXISTS trg_saga_failure_enter
AFTER UPDATE OF status, failure_key ON saga_executions
WHEN NEW.failure_key IS NOT NULL AND {_SQLITE_FAILURE_CHANGED}
BEGIN
  INSERT OR IGNORE INTO saga_failure_counts (failure_key, status, n)
    VALUES (NEW.failure_key, NEW.status, 0);
  UPDATE saga_failure_counts SET n = n + 1
    WHERE failure_key = NEW.failure_key AND status = NEW.status;
END""",
    """CREATE TRIGGER IF NOT EXISTS trg_saga_failure_delete AFTER DELETE ON saga_executions
WHEN OLD.failure_key IS NOT NULL
BEGIN
  UPDATE saga_failure_counts SET n = n - 1
    WHERE failure_key = OLD.failure_key AND status = OLD.status;
END""",
)

_POSTGRES_FAILURE_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION saga_failure_count_trg() RETURNS trigger AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.failure_key IS NOT NULL THEN
    UPDATE saga_failure_counts SET n = n - 1
    WHERE failure_key = OLD.failure_key AND status = OLD.status::text;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.failure_key IS NOT NULL THEN
    INSERT INTO saga_failure_counts (failure_key, status, n)
    VALUES (NEW.failure_key, NEW.status::text, 1)
    ON CONFLICT (failure_key, status) DO UPDATE SET n = saga_failure_counts.n + 1;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql""",
    # WHEN clauses keep sagas without a failure (nearly all writes) out of the function.
    """CREATE OR REPLACE TRIGGER trg_saga_failure_insert AFTER INSERT
ON saga_executions FOR EACH ROW WHEN (NEW.failure_key IS NOT NULL)
EXECUTE FUNCTION saga_failure_count_trg()""",
    """CREATE OR REPLACE TRIGGER trg_saga_failure_delete AFTER DELETE
ON saga_executions FOR EACH ROW WHEN (OLD.failure_key IS NOT NULL)
EXECUTE FUNCTION saga_failure_count_trg()""",
    """CREATE OR REPLACE TRIGGER trg_saga_failure_update AFTER UPDATE OF status, failure_key
ON saga_executions FOR EACH ROW WHEN ((OLD.failure_key IS NOT NULL OR NEW.failure_key IS NOT NULL)
  AND (OLD.status IS DISTINCT FROM NEW.status OR OLD.failure_key IS DISTINCT FROM NEW.failure_key))
EXECUTE FUNCTION saga_failure_count_trg()""",
)

_POSTGRES_COUNT_TRIGGERS = (
    """CREATE OR REPLACE FUNCTION saga_count_trg() RETURNS trigger AS $$
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    UPDATE saga_status_counts SET n = n - 1 WHERE status = OLD.status;
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO saga_status_counts (status, n) VALUES (NEW.status, 1)
    ON CONFLICT (status) DO UPDATE SET n = saga_status_counts.n + 1;
  END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql""",
    """CREATE OR REPLACE TRIGGER trg_saga_count_insert AFTER INSERT OR DELETE
ON saga_executions FOR EACH ROW EXECUTE FUNCTION saga_count_trg()""",
    """CREATE OR REPLACE TRIGGER trg_saga_count_update AFTER UPDATE OF status
ON saga_executions FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION saga_count_trg()""",
)


def count_trigger_ddl(dialect_name: str) -> tuple[str, ...]:
    """The statements that create the count triggers (status, failure cause) for a dialect."""
    if dialect_name == "sqlite":
        return _SQLITE_COUNT_TRIGGERS + _SQLITE_FAILURE_TRIGGERS
    if dialect_name == "postgresql":
        return _POSTGRES_COUNT_TRIGGERS + _POSTGRES_FAILURE_TRIGGERS
    return ()


RECOUNT_FAILURES_SQL = (
    "DELETE FROM saga_failure_counts",
    "INSERT INTO saga_failure_counts (failure_key, status, n) "
    "SELECT failure_key, status, COUNT(*) FROM saga_executions"
    " WHERE failure_key IS NOT NULL GROUP BY failure_key, status",
)
"""Rebuild the failure counts from the rows (when the table is new, or after a bulk load)."""

RECOUNT_SQL = (
    "DELETE FROM saga_status_counts",
    "INSERT INTO saga_status_counts (status, n) "
    "SELECT status, COUNT(*) FROM saga_executions GROUP BY status",
    *RECOUNT_FAILURES_SQL,
)
"""Rebuild the counts from the rows (after a migration or a bulk load)."""
