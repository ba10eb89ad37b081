"""A verified access token is remembered between requests, but still ends at ``exp``."""

from __future__ import annotations

import asyncio
import time

from tests.server.test_auth import _forge


async def test_a_remembered_token_still_expires(demo):
    exp = int(time.time()) + 2
    token = _forge({"exp": exp})
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(2):  # the second use is answered from the remembered claims
        assert (await demo.get("/api/v1/auth/me", headers=headers)).status_code == 200
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
    r = await demo.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 401


async def test_a_remembered_token_of_a_disabled_user_is_refused_at_once(demo):
    token = _forge({"sub": "u-insp-zj2"})
    headers = {"Authorization": f"Bearer {token}"}
    assert (await demo.get("/api/v1/auth/me", headers=headers)).status_code == 200
    admin = {"Authorization": f"Bearer {_forge({})}"}
    r = await demo.patch("/api/v1/users/u-insp-zj2", json={"disabled": True}, headers=admin)
    assert r.status_code == 200
    r = await demo.get("/api/v1/auth/me", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "user_disabled"
