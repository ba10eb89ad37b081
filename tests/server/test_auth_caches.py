"""What authentication remembers in memory stays bounded, whatever is thrown at it:
the claims of verified tokens and the failed logins per (username, client)."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from server.auth import KeyedToken, LoginLimiter, RateLimited

SECRET = "s" * 40


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def token(sub: str) -> str:
    now = int(time.time())
    claims = {
        "sub": sub,
        "iss": "i",
        "aud": "a",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"})


def test_remembered_token_claims_are_bounded_oldest_first(monkeypatch):
    class Small(KeyedToken):
        keys = {"k1": SECRET}
        verified = {}
        VERIFIED_MAX = 3

    tokens = [token(f"u{i}") for i in range(5)]
    for t in tokens:
        Small.decode_payload(t, SECRET, ["HS256"], issuer="i", audience="a")
    assert list(Small.verified) == tokens[2:]  # the two oldest went, one at a time
    full = []
    monkeypatch.setattr(jwt, "decode", lambda *a, **kw: full.append(1) or {"sub": "again"})
    assert Small.decode_payload(tokens[4], SECRET, ["HS256"])["sub"] == "u4"  # remembered
    assert full == []
    assert Small.decode_payload(tokens[0], SECRET, ["HS256"])["sub"] == "again"  # checked
    assert full == [1]


def test_the_limiter_still_limits():
    now = Now()
    limiter = LoginLimiter(max_failures=2, window_seconds=60, clock=now)
    for _ in range(2):
        limiter.check("li", "10.0.0.1")
        limiter.fail("Li", "10.0.0.1")
    with pytest.raises(RateLimited) as caught:
        limiter.check("LI", "10.0.0.1")
    assert caught.value.retry_after == 61
    limiter.check("li", "10.0.0.2")  # another client address is not limited
    now.t += 61
    limiter.check("li", "10.0.0.1")  # the window passed


def test_the_limiter_forgets_what_is_past_and_remembers_no_check():
    now = Now()
    limiter = LoginLimiter(max_failures=5, window_seconds=60, clock=now)
    for i in range(100):
        limiter.check(f"someone{i}", "10.0.0.1")  # a check alone remembers nothing
    assert limiter.keys == 0
    limiter.fail("li", "10.0.0.1")
    assert limiter.keys == 1
    now.t += 61
    limiter.check("li", "10.0.0.1")  # its only failure is out of the window
    assert limiter.keys == 0
    limiter.fail("li", "10.0.0.1")
    limiter.succeed("li", "10.0.0.1")
    assert limiter.keys == 0


def test_the_limiter_is_bounded_however_many_usernames_are_tried():
    class Small(LoginLimiter):
        MAX_KEYS = 50

    now = Now()
    limiter = Small(max_failures=3, window_seconds=60, clock=now)
    for i in range(1000):  # a spray of usernames, all inside the window
        limiter.fail(f"guess{i}", "10.0.0.9")
        now.t += 0.01
        assert limiter.keys <= 50
    # the latest to fail are the ones kept, and still limited
    for _ in range(2):
        limiter.fail("guess999", "10.0.0.9")
    with pytest.raises(RateLimited):
        limiter.check("guess999", "10.0.0.9")
    # past the bound, keys whose failures are all past the window go first
    now.t += 61
    for i in range(60):
        limiter.fail(f"new{i}", "10.0.0.9")
    assert limiter.keys <= 50
    assert not [k for k in limiter._failures if k[0].startswith("guess")]
    assert ("new59", "10.0.0.9") in limiter._failures
