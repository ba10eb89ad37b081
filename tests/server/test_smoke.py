from __future__ import annotations

from tests.conftest import login


async def test_each_demo_user_logs_in_and_sees_themselves(demo):
    for username in ("admin", "sup.js", "sup.zj", "insp.js1", "insp.zj2"):
        s = await login(demo, username)
        r = await s.get("/api/v1/auth/me")
        assert r.status_code == 200
        assert r.json()["username"] == username
