"""Hybrid logical clocks: causal order that survives wrong device clocks.

A timestamp is ``(wall_ms, counter, node)``, written as a fixed-width string
``"001767600000000.00000.node"`` so that string order is clock order. Pure functions:
the caller passes the physical time in.

The server receives every mutation's HLC. A device whose wall clock runs ahead of the
server's by more than ``max_skew_ms`` is *flagged*, and its timestamp is not trusted:
the mutation is ordered at the server's own clock instead, so a tablet with a clock set
to next year cannot win every conflict.
"""

from __future__ import annotations

import re

import msgspec

__all__ = ["HLC", "Received", "receive", "tick"]

_FORMAT = re.compile(r"^([0-9]{15})\.([0-9]{5})\.(.{1,64})$")  # ASCII digits only


class HLC(msgspec.Struct, frozen=True, order=True):
    wall_ms: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall_ms:015d}.{self.counter:05d}.{self.node}"

    @classmethod
    def parse(cls, text: str) -> HLC:
        m = _FORMAT.match(text)
        if not m:
            raise ValueError(f"not a hybrid logical clock value: {text!r}")
        return cls(int(m[1]), int(m[2]), m[3])


_MAX_COUNTER = 99_999  # five digits in the wire format


def _make(wall_ms: int, counter: int, node: str) -> HLC:
    """A clock value; a counter past five digits carries into the wall time, which keeps
    the order and the fixed-width format."""
    if counter > _MAX_COUNTER:
        return HLC(wall_ms + 1, 0, node)
    return HLC(wall_ms, counter, node)


def tick(last: HLC, now_ms: int, node: str) -> HLC:
    """The clock's next value for a local event (a local edit, a server write)."""
    if now_ms > last.wall_ms:
        return HLC(now_ms, 0, node)
    return _make(last.wall_ms, last.counter + 1, node)


class Received(msgspec.Struct, frozen=True):
    clock: HLC
    """The receiver's clock after the event."""
    effective: HLC
    """The timestamp to order this event by."""
    skew_ms: int
    """How far the sender's wall clock is ahead (+) or behind (-) the receiver's."""
    flagged: bool
    """The sender's clock was ahead by more than the allowed skew."""


def receive(last: HLC, remote: HLC, now_ms: int, node: str, max_skew_ms: int) -> Received:
    """Merge a remote timestamp into the local clock.

    A remote value within the allowed skew advances the clock as usual and is its own
    effective order. One too far ahead is flagged; the clock does not jump to it, and
    the event is ordered at the receiver's next local tick.
    """
    skew = remote.wall_ms - now_ms
    if skew > max_skew_ms:
        clock = tick(last, now_ms, node)
        return Received(clock=clock, effective=clock, skew_ms=skew, flagged=True)
    wall = max(last.wall_ms, remote.wall_ms, now_ms)
    if wall == last.wall_ms == remote.wall_ms:
        counter = max(last.counter, remote.counter) + 1
    elif wall == last.wall_ms:
        counter = last.counter + 1
    elif wall == remote.wall_ms:
        counter = remote.counter + 1
    else:
        counter = 0
    clock = _make(wall, counter, node)
    return Received(clock=clock, effective=remote, skew_ms=skew, flagged=skew < -max_skew_ms)
