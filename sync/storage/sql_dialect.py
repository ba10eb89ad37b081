"""What the SQL backends share about talking to a database, and where they differ.

Every statement of the shared storage code (:mod:`sync.storage.sql_batch`,
:mod:`sync.storage.sql_store`, :mod:`sync.storage.sql_accounts`,
:mod:`sync.storage.sql_evidence`) is written once, with ``?`` parameters, against a
:class:`Conn`: ``sqlite3.Connection`` is one as it is; the PostgreSQL backend wraps its
psycopg connection (``?`` becomes ``%s``). Both run in autocommit mode and the shared
code opens transactions itself (``BEGIN`` ... ``COMMIT``), so a group commit, a
savepoint per mutation and a snapshot read are the same code on both.

A :class:`Dialect` holds the little that differs: how a record's JSON field is read and
compared, how a write transaction begins (SQLite takes the write lock with ``BEGIN
IMMEDIATE``; PostgreSQL takes a transaction-level advisory lock, which is also what keeps
the change sequence gap-free in commit order: see ``docs/architecture.md``), and which
driver exceptions mean what.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from sync.models import Filter
from sync.storage.shared import FIELD

__all__ = ["Conn", "Cursor", "Dialect", "where_sql"]


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Any: ...


class Conn(Protocol):
    """A database connection in autocommit mode, with ``?`` parameters; rows read by
    column name and by position (``sqlite3.Row`` or its PostgreSQL twin)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any: ...

    @property
    def in_transaction(self) -> bool: ...


class Dialect(abc.ABC):
    """The fragments of SQL and the driver facts that differ between backends."""

    name: str
    error: type[Exception]
    """The driver's base exception."""
    integrity_error: type[Exception]
    """A constraint refused the write (a duplicate key)."""
    begin_write: tuple[str, ...]
    """Statements that open a write transaction and serialise it against every other
    writer (of this process and, for a shared database, of every other process)."""
    begin_read: str
    """Opens a read-only transaction that sees one snapshot."""
    speculates: bool = False
    """Push batches run first without the write lock (``sql_speculate.py``): worth it
    where several processes share the lock."""
    feed_arms_read_rows: bool = False
    """A feed page merged from one index range per inspection reads the rows in the
    ranges (True), or picks the page's seqs there and then reads their rows (False):
    whichever the database plans better."""
    evidence_from: str
    """A FROM item over the evidence hashes record ``r`` names (``finding``:
    ``evidence_hashes``, ``response``: ``evidence``), aliased ``j``."""
    evidence_value: str
    """The hash of one ``j`` row, as text."""
    evidence_is_text: str
    """True when the ``j`` row is a string (anything else is ignored)."""

    @abc.abstractmethod
    def failed(self, exc: BaseException) -> bool:
        """True when ``exc`` means the database failed (I/O, connection, full disk),
        not the data a statement was given."""

    @abc.abstractmethod
    def field_filter(self, f: Filter) -> tuple[str, list[Any]]:
        """The condition (and parameters) of one filter on a data field."""

    @abc.abstractmethod
    def order_by(self, field: str, direction: str) -> str:
        """ORDER BY terms for a data field, NULLs (absent) first, numbers before text."""

    def begin_batch(self, db: Conn) -> tuple[int, str | None] | None:
        """Open a write transaction for a push batch (:attr:`begin_write`). A dialect
        that can also read the change sequence and the audit chain's head in the same
        round trip returns them (``value``, newest ``hash`` or None); else None, and the
        batch reads them when it first needs them."""
        for sql in self.begin_write:
            db.execute(sql)
        return None

    def begin_read_batch(self, db: Conn) -> tuple[int, int, int | None] | None:
        """Open a snapshot read (:attr:`begin_read`). A dialect that can also read the
        snapshot's change sequence, tombstone horizon and scope version in the same round
        trip returns them (a pull page needs them); else None, and the batch reads them
        if asked."""
        db.execute(self.begin_read)
        return None

    def try_begin_batch(self, db: Conn) -> tuple[bool, tuple[int, str | None] | None]:
        """:meth:`begin_batch` if the write lock is free at once: (True, what that
        returns); else (False, None), with no transaction left open. Here it waits for
        the lock (a database without a lock to try)."""
        return True, self.begin_batch(db)

    @contextmanager
    def pipelined(self, db: Conn) -> Iterator[None]:
        """Statements run inside are sent together where the driver can (their results
        are read at the end; an error surfaces when the block ends)."""
        yield

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: a condition and its parameters. SQLite's
        ``IN (?, ...)`` by default; PostgreSQL takes one array instead, so a key lookup
        of a hundred ids is one short statement to plan, not a hundred parameters."""
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    @abc.abstractmethod
    def tuples(self, db: Conn, sql: str, params: Sequence[Any]) -> Iterable[tuple[Any, ...]]:
        """Run a query and hand its rows over as plain tuples (no row objects: a pull
        page reads thousands)."""


def where_sql(dialect: Dialect, kind: str, filters: Sequence[Filter]) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of live records of a kind matching every
    filter; field names are checked against :data:`~sync.storage.shared.FIELD`."""
    clauses = ["kind = ?", "deleted = 0"]
    params: list[Any] = [kind]
    for f in filters:
        if not FIELD.match(f.field):
            raise ValueError(f"bad filter field {f.field!r}")
        if f.op not in ("eq", "ne", "gte", "lte", "in", "contains"):  # pragma: no cover
            raise ValueError(f"bad filter op {f.op!r}")
        if f.op == "in" and not list(f.value):
            clauses.append("1 = 0")
            continue
        if f.field == "id":
            sql, args = _id_filter(f)
        else:
            sql, args = dialect.field_filter(f)
        clauses.append(sql)
        params.extend(args)
    return " AND ".join(clauses), params


def _id_filter(f: Filter) -> tuple[str, list[Any]]:
    if f.op == "in":
        values = list(f.value)
        return f"id IN ({','.join('?' * len(values))})", values
    op = {"eq": "=", "ne": "<>", "gte": ">=", "lte": "<="}.get(f.op)
    if op is None:
        raise ValueError(f"filter {f.op!r} does not apply to id")
    return f"id {op} ?", [f.value]
