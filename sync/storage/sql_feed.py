"""The SQL of a change-feed page, shared by the backends: which records of a scope come
after a cursor, in ``seq`` order, a page at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sync.storage.sql_dialect import Dialect

__all__ = ["feed_sql", "scope_sql"]

_MERGED_SCOPES = 64
"""Up to this many inspections, a feed page merges one index range per inspection."""


def scope_sql(
    inspection_ids: Sequence[str], refs: Sequence[tuple[str, str]]
) -> tuple[str, list[Any]]:
    """The condition (and parameters) of records in a scope: those of its inspections,
    and the unbound records (no inspection) it names."""
    parts: list[str] = []
    params: list[Any] = []
    if inspection_ids:
        parts.append(f"inspection_id IN ({','.join('?' * len(inspection_ids))})")
        params.extend(inspection_ids)
    if refs:
        pairs = ",".join(["(?,?)"] * len(refs))
        parts.append(f"(inspection_id IS NULL AND (kind, id) IN (VALUES {pairs}))")
        for kind, rid in refs:
            params.extend((kind, rid))
    return ("(" + " OR ".join(parts) + ")" if parts else "1 = 0"), params


def feed_sql(
    dialect: Dialect,
    columns: str,
    after_seq: int,
    inspection_ids: Sequence[str],
    refs: Sequence[tuple[str, str]],
    limit: int,
    *,
    max_seq: int | None,
    live_only: bool,
) -> tuple[str, list[Any]]:
    extra = ""
    tail: list[Any] = []
    if max_seq is not None:
        extra += " AND seq <= ?"
        tail.append(max_seq)
    if live_only:
        extra += " AND deleted = 0"
    if inspection_ids and len(inspection_ids) <= _MERGED_SCOPES:
        # One ordered index range per inspection (inspection_id, seq), each cut at
        # the page's size, merged: the work is the page, not all that follows the
        # cursor (an OR of the inspections reads every later row, then sorts).
        # PostgreSQL reads the rows in each range (a merge of ordered scans, no
        # second lookup); SQLite picks the seqs and then reads the page's rows.
        whole = dialect.feed_arms_read_rows
        picked = columns if whole else "seq"
        arms: list[str] = []
        args: list[Any] = []
        arm_tail = " ORDER BY seq LIMIT ?) AS arm"
        for iid in inspection_ids:
            arms.append(
                f"SELECT * FROM (SELECT {picked} FROM records WHERE inspection_id = ?"
                f" AND seq > ?{extra}{arm_tail}"
            )
            args += [iid, after_seq, *tail, limit]
        if refs:
            scope, params = scope_sql((), refs)
            arms.append(
                f"SELECT * FROM (SELECT {picked} FROM records WHERE seq > ? AND {scope}"
                f"{extra}{arm_tail}"
            )
            args += [after_seq, *params, *tail, limit]
        page = f"SELECT * FROM ({' UNION ALL '.join(arms)}) AS page ORDER BY seq LIMIT ?"
        args.append(limit)
        if whole:
            return page, args
        return f"SELECT {columns} FROM records WHERE seq IN ({page}) ORDER BY seq", args
    # Pick the page's seqs first (index only), then read just those rows: sorting
    # whole rows of everything after the cursor costs more than the page itself.
    scope, params = scope_sql(inspection_ids, refs)
    sub = f"SELECT seq FROM records WHERE seq > ? AND {scope}{extra} ORDER BY seq LIMIT ?"
    args = [after_seq, *params, *tail, limit]
    return f"SELECT {columns} FROM records WHERE seq IN ({sub}) ORDER BY seq", args
