"""The backend for more than one process: PostgreSQL through psycopg 3.

Selected by a ``postgresql://`` database URL (``INSPECTSYNC_DATABASE_URL``). Every
statement is the shared SQL of :class:`~sync.storage.sql_store.SQLStore`; this module
holds the connections and the dialect.

- **One writer per process**: a dedicated connection on a thread of its own behind the
  store's asyncio lock (as SQLite's), so a push batch costs one hop and queued batches
  share one ``COMMIT`` (group commit).
- **Writers of every process are serialised by a transaction-level advisory lock**
  (:data:`WRITE_LOCK`, taken by ``BEGIN``'s companion statement). That one lock is the
  whole answer to two classic traps of a concurrent database:

  * *a pull never skips*: a record's ``seq`` is taken from the one-row ``seq_counter``
    inside the write transaction holding the lock, so transactions commit in ``seq``
    order, and a snapshot that sees some ``seq`` sees every lower one (PostgreSQL makes a
    transaction visible before it releases its locks). A cursor can never pass a record
    that becomes visible later.
  * *the audit chain stays one chain*: each event links to the newest one, read under
    the same lock, whichever instance writes it.

  The lock is held for the length of a write transaction (milliseconds); reads never
  take it.
- **Readers** come from a ``psycopg_pool`` pool, each call on a worker thread; a
  snapshot read (``read_batch``, ``verify_audit``) is one ``REPEATABLE READ`` transaction.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import RowMaker, tuple_row
from psycopg_pool import ConnectionPool

from sync.errors import StorageError
from sync.models import Filter
from sync.storage.postgres_migrations import apply_migrations
from sync.storage.sql_dialect import Conn, Dialect
from sync.storage.sql_speculate import Mode
from sync.storage.sql_store import SQLStore

__all__ = ["WRITE_LOCK", "PostgresDialect", "PostgresStore", "is_postgres_url", "redacted"]

T = TypeVar("T")

WRITE_LOCK = 0x1A5_0002
"""The advisory lock key every write transaction takes (see the module docstring)."""
STARTUP_LOCK = 0x1A5_0003
"""The advisory lock key of :meth:`PostgresStore.startup_lock`."""


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """The shared SQL's ``?`` parameters as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


_INSERT_VALUES = re.compile(r"^(INSERT INTO .+? VALUES\s*)(\((?:\?\s*,\s*)*\?\))(.*)$", re.S)
_ROWS_PER_INSERT = 256
_MAX_PARAMS = 30_000  # PostgreSQL takes at most 65,535 parameters in one statement


@lru_cache(maxsize=128)
def _multi_row(sql: str) -> tuple[str, str, int] | None:
    """An ``INSERT ... VALUES (?, ..., ?) [tail]`` split into head, tail and the row's
    width; ``None`` for any other statement (or one with ``?`` in its tail)."""
    m = _INSERT_VALUES.match(sql)
    if m is None or "?" in m.group(3) or "%" in sql:
        return None
    head, group, tail = m.groups()
    return head, tail, group.count("?")


@lru_cache(maxsize=128)
def _copy_sql(head: str) -> bytes:
    """``INSERT INTO t (a, b) VALUES`` as ``COPY t (a, b) FROM STDIN``."""
    table_columns = head.strip()[len("INSERT INTO ") : -len("VALUES")].strip()
    return f"COPY {table_columns} FROM STDIN".encode()


@lru_cache(maxsize=512)
def _multi_sql(head: str, tail: str, width: int, count: int) -> bytes:
    """The statement for ``count`` rows in PostgreSQL's own ``$n`` parameters, run by a
    :class:`psycopg.RawCursor`: psycopg parses a long query's placeholders on every
    run (it caches short ones only), which cost more than the rows themselves."""
    groups = (
        "(" + ",".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(count)
    )
    return (head + ",".join(groups) + tail).encode()


class Row:
    """A row read by column name and by position, like ``sqlite3.Row``."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: Sequence[Any]) -> None:
        self._names = names
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, int):
            return self._values[key]
        return self._values[self._names[key]]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> Iterable[str]:
        return self._names.keys()


@lru_cache(maxsize=256)
def _names(fields: tuple[bytes, ...]) -> dict[str, int]:
    return {f.decode(): i for i, f in enumerate(fields)}


def _row_factory(cursor: Any) -> RowMaker[Row]:
    # the column names read off the result itself: psycopg's ``description`` builds a
    # Column object per column for every statement, a pull page's largest cost here
    res = cursor.pgresult
    fields = tuple(res.fname(i) or b"" for i in range(res.nfields)) if res is not None else ()
    names = _names(fields)
    return lambda values: Row(names, values)


class PGConn:
    """A psycopg connection as the shared SQL expects it (:class:`Conn`): ``?``
    parameters, ``sqlite3.Row``-like rows, ``in_transaction``."""

    __slots__ = ("piped", "raw")

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self.piped = False  # inside PostgresDialect.pipelined

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        if not parameters:
            return self.raw.execute(sql.encode(), prepare=False)
        return self.raw.execute(_pg_sql(sql).encode(), parameters, prepare=False)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Many rows of one ``INSERT ... VALUES (?, ...)`` as a few multi-row statements
        (:func:`_multi_row`); any other statement row by row. A row per statement costs
        PostgreSQL an executor start (and a plan) for every row: the push's record,
        audit and result rows were most of its server time."""
        rows = list(rows)
        split = _multi_row(sql)
        if split is None or len(rows) < 2:
            with self.raw.cursor() as cur:
                cur.executemany(_pg_sql(sql).encode(), rows)
            return
        head, tail, width = split
        if not tail.strip() and not self.piped:
            # a plain append: COPY, the cheapest way in (not in a pipeline)
            with self.raw.cursor() as cur, cur.copy(_copy_sql(head)) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        per = max(1, min(_ROWS_PER_INSERT, _MAX_PARAMS // width))
        with psycopg.RawCursor(self.raw) as cur:
            start = 0
            while start < len(rows):
                # a power of two rows per statement: a few shapes per table, each
                # prepared once and planned once (PostgreSQL keeps the generic plan of
                # a prepared INSERT), where planning a hundred-row VALUES list anew
                # cost about a third of running it
                count = 1 << (min(per, len(rows) - start).bit_length() - 1)
                chunk = rows[start : start + count]
                params = [v for row in chunk for v in row]
                cur.execute(_multi_sql(head, tail, width, count), params, prepare=True)
                start += count

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE


_BEGIN_BATCH = (
    f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK});"
    " SELECT value, (SELECT hash FROM history ORDER BY id DESC LIMIT 1) FROM seq_counter"
).encode()
"""A push batch's transaction: begun, serialised (the write lock), and the sequence
and audit chain head it continues from read, in one round trip (the simple query
protocol takes several statements when they have no parameters)."""


_READ_TX = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL enable_bitmapscan = off"
_TRY_BATCH = (
    f"BEGIN; SELECT pg_try_advisory_xact_lock({WRITE_LOCK});"
    " SELECT value, (SELECT hash FROM history ORDER BY id DESC LIMIT 1) FROM seq_counter"
).encode()
""":data:`_BEGIN_BATCH` with the lock only tried. The sequence is read by a statement of
its own, after the lock: a statement sees what was committed when it began."""


_BEGIN_READ = (
    f"{_READ_TX}; SELECT (SELECT value FROM seq_counter),"
    " (SELECT value FROM store_meta WHERE key = 'tombstone_horizon'),"
    " (SELECT value FROM store_meta WHERE key = 'scope_version')"
).encode()
"""A snapshot read begun, and the sequence, tombstone horizon and scope version it sees
read (its first statement to read: the snapshot is taken there), in one round trip."""


def _last_row(db: Conn, statements: bytes) -> Any:
    """Run several statements in one round trip (the simple query protocol); the first
    row of the last one's result."""
    assert isinstance(db, PGConn)
    cur = db.raw.execute(statements)
    while cur.nextset():
        pass
    row = cur.fetchone()
    assert row is not None
    return row


class PostgresDialect(Dialect):
    name = "postgresql"
    error = psycopg.Error
    integrity_error = psycopg.errors.IntegrityError
    begin_write = ("BEGIN", f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
    # Reads walk indexes in their order rather than collect every match in a bitmap
    # and sort it: a feed page (``seq > cursor ORDER BY seq LIMIT n`` per inspection)
    # then reads the page, not everything after the cursor. Without statistics (a
    # table that grew since the last ANALYZE, or autovacuum off) the planner guesses a
    # few rows per inspection and picks the bitmap, whose cost grows with the rows left.
    begin_read = _READ_TX
    feed_arms_read_rows = True
    speculates = True
    _evidence = (
        "(r.data::jsonb) -> (CASE r.kind WHEN 'finding' THEN 'evidence_hashes' ELSE 'evidence' END)"
    )
    evidence_from = (
        f"jsonb_array_elements(CASE WHEN jsonb_typeof({_evidence}) = 'array'"
        f" THEN {_evidence} ELSE '[]'::jsonb END) j(v)"
    )
    evidence_value = "(j.v #>> '{}') COLLATE \"C\""
    evidence_is_text = "jsonb_typeof(j.v) = 'string'"

    def failed(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.OperationalError | psycopg.InternalError)

    def field_filter(self, f: Filter) -> tuple[str, list[Any]]:
        col = f"((data::jsonb) -> '{f.field}')"
        if f.op == "contains":
            return f"{col} @> ?::jsonb", [json.dumps([f.value])]
        if f.op == "in":
            values = [json.dumps(v) for v in f.value]
            return f"{col} IN ({','.join(['?::jsonb'] * len(values))})", values
        if f.op in ("gte", "lte") and isinstance(f.value, str):  # text sorts byte-wise
            op = ">=" if f.op == "gte" else "<="
            return f"((data::jsonb) ->> '{f.field}') COLLATE \"C\" {op} ?", [f.value]
        op = {"eq": "=", "ne": "IS DISTINCT FROM", "gte": ">=", "lte": "<="}[f.op]
        return f"{col} {op} ?::jsonb", [json.dumps(f.value)]

    def order_by(self, field: str, direction: str) -> str:
        # as SQLite orders json_extract values: absent/null first, numbers (by value)
        # before text (byte-wise)
        v = f"((data::jsonb) -> '{field}')"
        return (
            f"(CASE jsonb_typeof({v}) WHEN 'number' THEN 1 WHEN 'boolean' THEN 1"
            f" WHEN 'string' THEN 2 ELSE 0 END) {direction},"
            f" (CASE WHEN jsonb_typeof({v}) = 'number' THEN ({v} #>> '{{}}')::numeric END)"
            f" {direction},"
            f" ({v} #>> '{{}}') COLLATE \"C\" {direction}"
        )

    def begin_batch(self, db: Conn) -> tuple[int, str | None] | None:
        row = _last_row(db, _BEGIN_BATCH)
        return int(row[0]), (None if row[1] is None else str(row[1]))

    def begin_read_batch(self, db: Conn) -> tuple[int, int, int | None] | None:
        row = _last_row(db, _BEGIN_READ)
        return int(row[0]), int(row[1] or 0), (None if row[2] is None else int(row[2]))

    def try_begin_batch(self, db: Conn) -> tuple[bool, tuple[int, str | None] | None]:
        assert isinstance(db, PGConn)
        cur = db.raw.execute(_TRY_BATCH)
        cur.nextset()
        got = cur.fetchone()
        cur.nextset()
        row = cur.fetchone()
        assert got is not None and row is not None
        if not got[0]:
            db.raw.execute(b"ROLLBACK")
            return False, None
        return True, (int(row[0]), (None if row[1] is None else str(row[1])))

    @contextmanager
    def pipelined(self, db: Conn) -> Iterator[None]:
        assert isinstance(db, PGConn)
        was, db.piped = db.piped, True
        try:
            with db.raw.pipeline():  # nested: the inner block's end reads its results
                yield
        finally:
            db.piped = was

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def tuples(self, db: Conn, sql: str, params: Sequence[Any]) -> Iterable[tuple[Any, ...]]:
        assert isinstance(db, PGConn)
        with db.raw.cursor(row_factory=tuple_row) as cur:
            cur.execute(_pg_sql(sql).encode(), params, prepare=False)
            return cur.fetchall()


# Plan every query for its parameters: psycopg would prepare a statement after five runs
# (``prepare_threshold``) and PostgreSQL may then keep one generic plan for it, made
# while the tables were small or never analysed: the push's prefetch (``kind = ? AND id
# IN (...)``) ran at 38 ms a call in the benchmark instead of 0.5 ms
# (docs/performance.md). So nothing is prepared but the multi-row INSERTs
# (:meth:`PGConn.executemany`), whose one plan never depends on the values: an
# unprepared statement is planned for its parameters each time it runs.
# A page read at random costs about what one read in order does where the tables are in
# memory (or on SSD): at the default 4.0, a lookup of a hundred keys in a table of some
# ten thousand rows never analysed was planned as a scan of the whole table (the push's
# duplicate check read every stored mutation result, a cost growing with the table).
_OPTIONS = "-c random_page_cost=1.1"
_NEVER = 1 << 30
"""psycopg's ``prepare_threshold``: prepare only what asks (``None`` would refuse that too)."""


def _with_options(url: str) -> str:
    """``url`` with our session options added to any it names (a search_path, say)."""
    given = conninfo_to_dict(url).get("options") or ""
    return make_conninfo(url, options=f"{given} {_OPTIONS}".strip())


def _connect(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(_with_options(url), autocommit=True, row_factory=_row_factory)
    conn.prepare_threshold = _NEVER
    return conn


class PostgresStore(SQLStore):
    """PostgreSQL storage at ``url`` (a libpq connection string or URL).

    ``readers`` is the size of the reader pool (and of its thread pool). Migrations run
    at :meth:`open`, under an advisory lock. ``speculation``: whether push batches merge
    before taking the write lock (:class:`~sync.storage.sql_speculate.Contention`)."""

    dialect = PostgresDialect()

    def __init__(self, url: str, *, readers: int = 4, speculation: Mode = "auto") -> None:
        super().__init__()
        self.contention.mode = speculation
        self.url = url
        self.reader_count = max(1, readers)
        self._writer: PGConn | None = None
        self._pool: ConnectionPool[Any] | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._read_threads: ThreadPoolExecutor | None = None
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({redacted(self.url)!r})"

    # --- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            await asyncio.to_thread(self._open)
        except psycopg.Error as exc:
            raise StorageError(f"cannot open database {redacted(self.url)}", original=exc) from exc

    def _open(self) -> None:
        with self._open_lock:
            with psycopg.connect(self.url, autocommit=True) as conn:
                apply_migrations(conn)
            pool: ConnectionPool[Any] = ConnectionPool(
                _with_options(self.url),
                min_size=1,
                max_size=self.reader_count,
                kwargs={
                    "autocommit": True,
                    "row_factory": _row_factory,
                    "prepare_threshold": _NEVER,
                },
                open=False,
                name="inspectsync-readers",
            )
            pool.open(wait=True, timeout=30)
            self._pool = pool
            self._read_threads = ThreadPoolExecutor(self.reader_count, "pg-reader")
            self._write_thread = ThreadPoolExecutor(1, "pg-writer")
            self._writer = PGConn(_connect(self.url))

    async def close(self) -> None:
        writer, pool = self._writer, self._pool
        self._writer = None
        self._pool = None
        for ex in (self._write_thread, self._read_threads):
            if ex is not None:
                ex.shutdown(wait=True)
        self._write_thread = self._read_threads = None
        if writer is not None:
            writer.raw.close()
        if pool is not None:
            await asyncio.to_thread(pool.close)

    @asynccontextmanager
    async def startup_lock(self) -> AsyncIterator[None]:
        """Held on a connection of its own (a session advisory lock, released when the
        connection closes even if this process dies)."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        except psycopg.Error as exc:
            raise StorageError("cannot connect to the database", original=exc) from exc
        async with conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (STARTUP_LOCK,))
            yield

    # --- plumbing --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._writer is None:
            raise StorageError("store is not open")

    async def _on_writer(self, fn: Callable[[Conn], T]) -> T:
        if self._writer is None or self._write_thread is None:
            raise StorageError("store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._write_thread, self._run_writer, fn)

    def _run_writer(self, fn: Callable[[Conn], T]) -> T:
        writer = self._writer
        assert writer is not None
        if writer.raw.closed or writer.raw.broken:  # the server restarted: reconnect
            try:
                writer.raw = _connect(self.url)
            except psycopg.Error as exc:
                raise StorageError("cannot reconnect to the database", original=exc) from exc
        return fn(writer)

    async def _on_reader(self, fn: Callable[[Conn], T]) -> T:
        if self._pool is None or self._read_threads is None:
            raise StorageError("store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._read_threads, self._run_reader, fn)
        except psycopg.Error as exc:
            raise StorageError(f"query failed: {exc}", original=exc) from exc

    def _run_reader(self, fn: Callable[[Conn], T]) -> T:
        assert self._pool is not None
        with self._pool.connection() as raw:
            return fn(PGConn(raw))


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "(unreadable database URL)"
    info.pop("password", None)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in info.items() if v is not None})
