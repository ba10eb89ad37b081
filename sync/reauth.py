"""Re-authenticating a signer at the moment of signing, on a tablet, offline.

A sign-off is made where the server often cannot be reached, so the tablet checks the
password itself: at each online login (the server has just accepted the password) it
keeps a *verifier*, PBKDF2-HMAC-SHA256 of the password with a random 16-byte salt and
:data:`ITERATIONS` iterations, never the password; at signing the password typed again
is derived with the same salt and compared in constant time. :data:`MAX_ATTEMPTS` wrong
ones in a row lock signing until the next online login makes a new verifier.

The same scheme and the same stored shape as the app's ``app/lib/reauth.js`` (a
verifier made by one is checked by the other); the reference tablet CLI
(``inspectsync tablet``) keeps it in its state file. Pure apart from the salt's
randomness: what to store and what to say is the caller's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any, Literal

import msgspec

__all__ = [
    "ITERATIONS",
    "MAX_ATTEMPTS",
    "REAUTH_METHOD",
    "Attempt",
    "attempt",
    "is_locked",
    "make_verifier",
    "matches",
]

ITERATIONS = 310_000
"""OWASP's figure for PBKDF2-HMAC-SHA256: about 0.1 s here, 0.3 s on a tablet."""
MAX_ATTEMPTS = 5
"""Wrong passwords in a row that lock signing until the next online login."""
REAUTH_METHOD = "device_password"
"""What a sign-off so made records as ``reauth_method`` (``sync.signatures``)."""


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def make_verifier(username: str, password: str, iterations: int = ITERATIONS) -> dict[str, Any]:
    """A new verifier of ``password`` with a fresh random salt (hex fields; JSON-ready)."""
    salt = os.urandom(16)
    return {
        "alg": "PBKDF2-HMAC-SHA256",
        "iterations": iterations,
        "salt": salt.hex(),
        "hash": _derive(password, salt, iterations).hex(),
        "username": username,
        "failures": 0,
    }


def matches(verifier: dict[str, Any], password: str) -> bool:
    """Whether ``password`` is the one ``verifier`` was made of (constant-time compare)."""
    got = _derive(password, bytes.fromhex(verifier["salt"]), int(verifier["iterations"]))
    return hmac.compare_digest(got, bytes.fromhex(verifier["hash"]))


def is_locked(verifier: dict[str, Any] | None) -> bool:
    """Whether too many wrong passwords have locked signing."""
    return verifier is not None and int(verifier.get("failures", 0)) >= MAX_ATTEMPTS


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt to sign: ``ok``, or why not (``missing``: no verifier, a login from
    before one was kept; ``locked``; ``wrong``), the attempts ``left`` before signing
    locks, and the verifier to keep (its failure count updated)."""

    ok: bool
    reason: Literal["missing", "locked", "wrong"] | None = None
    left: int = 0
    verifier: dict[str, Any] | None = None


def attempt(verifier: dict[str, Any] | None, password: str) -> Attempt:
    """Check ``password`` against ``verifier``: a right one resets the count, a wrong
    one adds to it (the last allowed one locks); a locked verifier derives nothing."""
    if not verifier:
        return Attempt(ok=False, reason="missing")
    if is_locked(verifier):
        return Attempt(ok=False, reason="locked", verifier=verifier)
    if matches(verifier, password):
        return Attempt(ok=True, left=MAX_ATTEMPTS, verifier={**verifier, "failures": 0})
    after = {**verifier, "failures": int(verifier.get("failures", 0)) + 1}
    return Attempt(
        ok=False,
        reason="locked" if is_locked(after) else "wrong",
        left=MAX_ATTEMPTS - after["failures"],
        verifier=after,
    )
