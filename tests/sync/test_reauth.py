"""The signing verifier's rules (sync/reauth.py, the same as app/lib/reauth.js): it is
standard PBKDF2-HMAC-SHA256, holds no password, and wrong passwords lock signing at the
fifth in a row, whatever came before, until a new verifier (the next login)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from sync.reauth import ITERATIONS, MAX_ATTEMPTS, attempt, is_locked, make_verifier, matches


def test_the_verifier_is_standard_pbkdf2_and_keeps_no_password():
    # RFC 7914, section 11: PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1), first 32 bytes
    vector = {
        "alg": "PBKDF2-HMAC-SHA256",
        "iterations": 1,
        "salt": b"salt".hex(),
        "hash": "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc",
        "username": "x",
        "failures": 0,
    }
    assert matches(vector, "passwd") and not matches(vector, "passwd ")
    v = make_verifier("insp.js1", "s3cret 密码")
    assert v["iterations"] == ITERATIONS == 310_000 and len(bytes.fromhex(v["salt"])) == 16
    assert "s3cret" not in json.dumps(v) and matches(v, "s3cret 密码")
    assert make_verifier("insp.js1", "s3cret 密码")["salt"] != v["salt"]


VERIFIER = make_verifier("insp.js1", "right", iterations=1)


@given(st.lists(st.booleans(), max_size=14))
def test_five_wrong_in_a_row_lock_and_a_right_one_before_resets(tries: list[bool]):
    verifier = VERIFIER
    wrong_in_a_row, locked = 0, False
    for right in tries:
        result = attempt(verifier, "right" if right else "wrong")
        if locked:
            assert not result.ok and result.reason == "locked"
        elif right:
            assert result.ok and result.verifier is not None
            assert result.verifier["failures"] == 0
            wrong_in_a_row = 0
        else:
            wrong_in_a_row += 1
            locked = wrong_in_a_row >= MAX_ATTEMPTS
            assert not result.ok and result.reason == ("locked" if locked else "wrong")
            assert result.left == MAX_ATTEMPTS - wrong_in_a_row
        assert result.verifier is not None
        verifier = result.verifier
        assert is_locked(verifier) == locked
    # no verifier (a login from before one was kept): nothing can be signed
    assert attempt(None, "right").reason == "missing"
