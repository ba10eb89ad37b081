"""Reading the outline of a JSON or MessagePack message without decoding it.

msgspec decodes recursively, so a value nested deeper than the interpreter's recursion
limit cannot be decoded at all (``RecursionError``), not even to skip it. When that
happens to a push, the server still owes every readable mutation of the batch its own
verdict: these walkers split a container into the byte spans of its children with a
loop and a counter, never recursion, whatever the depth. They are the slow path, taken
only for such bodies; every span they give is then decoded by msgspec as usual.

Both raise ``ValueError`` on a message they cannot follow (truncated, not a container).
"""

from __future__ import annotations

import re
import struct

__all__ = ["Span", "children"]

Span = tuple[int, int]
"""``data[start:end]`` is one encoded value."""

# A JSON token: a string (escapes included), a structural character, a run of anything
# else (numbers, true, false, null), or white space.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:,]|[^\[\]{}:,"\s]+|\s+', re.S)


def _json_children(data: bytes) -> list[tuple[Span | None, Span]]:
    start = len(data) - len(data.lstrip())
    if start >= len(data) or data[start] not in b"[{":
        raise ValueError("not a JSON object or array")
    is_object = data[start] == ord("{")
    out: list[tuple[Span | None, Span]] = []
    depth = 0
    key: Span | None = None
    value_start: int | None = None
    expect_key = is_object
    for m in _JSON_TOKEN.finditer(data, start):
        tok = m.group()
        if tok[:1].isspace():
            continue
        first = tok[0]
        if first in b"[{":
            depth += 1
            if depth == 2 and value_start is None:
                value_start = m.start()
            if depth == 1:
                continue
        elif first in b"]}":
            depth -= 1
            if depth == 0:
                if value_start is not None:
                    out.append((key, (value_start, m.start())))
                return [(k, _trim(data, v)) for k, v in out]
            continue
        if depth != 1:
            continue
        if first == ord(","):
            if value_start is not None:
                out.append((key, (value_start, m.start())))
            key, value_start, expect_key = None, None, is_object
        elif first == ord(":"):
            expect_key = False
        elif expect_key:
            key = (m.start(), m.end())
        elif value_start is None:
            value_start = m.start()
    raise ValueError("the JSON text ends inside a container")


def _trim(data: bytes, span: Span) -> Span:
    start, end = span
    while end > start and data[end - 1 : end].isspace():
        end -= 1
    return start, end


# MessagePack: for each first byte, how many length bytes follow and what it is.
_FIXED = {  # first byte -> size of the payload after it
    0xC0: 0,
    0xC2: 0,
    0xC3: 0,
    0xCA: 4,
    0xCB: 8,
    0xCC: 1,
    0xCD: 2,
    0xCE: 4,
    0xCF: 8,
    0xD0: 1,
    0xD1: 2,
    0xD2: 4,
    0xD3: 8,
    0xD4: 2,
    0xD5: 3,
    0xD6: 5,
    0xD7: 9,
    0xD8: 17,
}
_SIZED = {  # first byte -> (bytes of the length, extra bytes: the ext type)
    0xC4: (1, 0),
    0xC5: (2, 0),
    0xC6: (4, 0),
    0xC7: (1, 1),
    0xC8: (2, 1),
    0xC9: (4, 1),
    0xD9: (1, 0),
    0xDA: (2, 0),
    0xDB: (4, 0),
}
_COUNTED = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}  # (len bytes, per item)
_UINT = {1: ">B", 2: ">H", 4: ">I"}


def _header(data: bytes, pos: int) -> tuple[int, int]:
    """(position after the header and any scalar payload, values contained)."""
    b = data[pos]
    if b <= 0x7F or b >= 0xE0:
        return pos + 1, 0
    if 0x80 <= b <= 0x8F:
        return pos + 1, 2 * (b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return pos + 1, b & 0x0F
    if 0xA0 <= b <= 0xBF:
        return pos + 1 + (b & 0x1F), 0
    if b in _FIXED:
        return pos + 1 + _FIXED[b], 0
    if b in _SIZED:
        width, extra = _SIZED[b]
        (n,) = struct.unpack_from(_UINT[width], data, pos + 1)
        return pos + 1 + width + extra + n, 0
    if b in _COUNTED:
        width, per = _COUNTED[b]
        (n,) = struct.unpack_from(_UINT[width], data, pos + 1)
        return pos + 1 + width, per * n
    raise ValueError(f"not MessagePack: byte 0x{b:02x} at {pos}")


def _skip(data: bytes, pos: int) -> int:
    """The end of the value at ``pos``: a loop over headers with a count of the values
    still to pass, so depth costs nothing but time."""
    remaining = 1
    while remaining:
        if pos >= len(data):
            raise ValueError("the MessagePack data ends inside a value")
        pos, inner = _header(data, pos)
        remaining += inner - 1
    if pos > len(data):
        raise ValueError("the MessagePack data ends inside a value")
    return pos


def _msgpack_children(data: bytes) -> list[tuple[Span | None, Span]]:
    b = data[0] if data else -1
    is_map = 0x80 <= b <= 0x8F or b in (0xDE, 0xDF)
    if not (is_map or 0x90 <= b <= 0x9F or b in (0xDC, 0xDD)):
        raise ValueError("not a MessagePack map or array")
    pos, count = _header(data, 0)
    out: list[tuple[Span | None, Span]] = []
    for _ in range(count // 2 if is_map else count):
        key: Span | None = None
        if is_map:
            end = _skip(data, pos)
            key, pos = (pos, end), end
        end = _skip(data, pos)
        out.append((key, (pos, end)))
        pos = end
    return out


def children(data: bytes, msgpack: bool) -> list[tuple[Span | None, Span]]:
    """The children of the object/map or array that ``data`` encodes: for each, the
    span of its key (None in an array) and of its value."""
    return _msgpack_children(data) if msgpack else _json_children(data)
