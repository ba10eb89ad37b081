"""Login, refresh rotation, reuse detection, logout, device revocation, token checks."""

from __future__ import annotations

import shutil
import time

import jwt
import pytest
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.demo import DEMO_PASSWORD
from server.settings import ConfigError, Settings
from tests.conftest import FAST, SECRET, login


async def test_login_returns_tokens_and_wrong_password_is_401(demo):
    r = await demo.post("/api/v1/auth/login", json={"username": "sup.js", "password": "nope-nope"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_credentials"
    r = await demo.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope-nope"})
    assert r.json()["code"] == "invalid_credentials"  # unknown user: same answer

    s = await login(demo, "sup.js")
    claims = jwt.decode(
        s.tokens["access_token"], SECRET, algorithms=["HS256"], audience="inspectsync-api"
    )
    assert claims["sub"] == "u-sup-js"
    assert {"exp", "nbf", "iat", "iss", "aud", "jti"} <= claims.keys()
    assert jwt.get_unverified_header(s.tokens["access_token"])["kid"] == "k1"


async def test_refresh_rotates_and_reuse_revokes_the_family(demo):
    s = await login(demo, "insp.js1")
    first = s.tokens["refresh_token"]
    r = await demo.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 200
    second = r.json()["refresh_token"]
    assert second != first

    # the spent token is presented again (stolen copy): refused, and the family dies
    r = await demo.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 401
    assert r.json()["code"] == "refresh_token_reused"
    r = await demo.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert r.status_code == 401
    assert r.json()["code"] == "refresh_token_reused" or r.json()["code"] == "refresh_token_revoked"

    # another login of the same user is a different family and still works
    other = await login(demo, "insp.js1")
    r = await demo.post(
        "/api/v1/auth/refresh", json={"refresh_token": other.tokens["refresh_token"]}
    )
    assert r.status_code == 200


async def test_logout_revokes_the_refresh_token(demo):
    s = await login(demo, "insp.js1")
    r = await demo.post("/api/v1/auth/logout", json={"refresh_token": s.tokens["refresh_token"]})
    assert r.status_code == 204
    r = await demo.post("/api/v1/auth/refresh", json={"refresh_token": s.tokens["refresh_token"]})
    assert r.status_code == 401


async def test_revoked_device_is_refused_at_once(demo):
    tablet = await login(demo, "insp.js1", device={"name": "Tablet 7", "app_version": "1.0"})
    device_id = tablet.tokens["device_id"]
    assert device_id
    assert (await tablet.get("/api/v1/inspections")).status_code == 200

    # relogin on the same device reuses it
    again = await login(demo, "insp.js1", device={"id": device_id})
    assert again.tokens["device_id"] == device_id

    admin = await login(demo, "admin")
    r = await admin.post(f"/api/v1/devices/{device_id}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"]

    for s in (tablet, again):  # access tokens not yet expired: refused anyway
        r = await s.get("/api/v1/inspections")
        assert r.status_code == 401
        assert r.json()["code"] == "device_revoked"
    r = await demo.post(
        "/api/v1/auth/refresh", json={"refresh_token": tablet.tokens["refresh_token"]}
    )
    assert r.status_code == 401
    r = await demo.post(
        "/api/v1/auth/login",
        json={"username": "insp.js1", "password": DEMO_PASSWORD, "device": {"id": device_id}},
    )
    assert r.json()["code"] == "device_revoked"
    # the user can still work from another device
    assert (await login(demo, "insp.js1", device={"name": "Spare tablet"})).tokens["device_id"]


async def test_a_user_cannot_log_in_with_someone_elses_device(demo):
    tablet = await login(demo, "insp.js1", device={"name": "Tablet 8"})
    r = await demo.post(
        "/api/v1/auth/login",
        json={
            "username": "insp.js2",
            "password": DEMO_PASSWORD,
            "device": {"id": tablet.tokens["device_id"]},
        },
    )
    assert r.status_code == 422
    assert r.json()["field"] == "device.id"


async def test_disabled_user_is_refused(demo):
    s = await login(demo, "insp.zj2")
    admin = await login(demo, "admin")
    r = await admin.patch("/api/v1/users/u-insp-zj2", json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert (await s.get("/api/v1/auth/me")).json()["code"] == "user_disabled"
    r = await demo.post(
        "/api/v1/auth/login", json={"username": "insp.zj2", "password": DEMO_PASSWORD}
    )
    assert r.json()["code"] == "user_disabled"


async def test_failed_logins_are_rate_limited(demo):
    for _ in range(5):
        r = await demo.post(
            "/api/v1/auth/login", json={"username": "sup.zj", "password": "wrong-password"}
        )
        assert r.status_code == 401
    r = await demo.post(
        "/api/v1/auth/login", json={"username": "sup.zj", "password": DEMO_PASSWORD}
    )
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) > 0
    # other users are not affected
    assert (await login(demo, "sup.js")).tokens["access_token"]


def _forge(claims: dict, *, key: str = SECRET, kid: str = "k1", alg: str = "HS256") -> str:
    now = int(time.time())
    base = {
        "sub": "u-admin",
        "iss": "inspectsync",
        "aud": "inspectsync-api",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "x",
    }
    base.update(claims)
    base = {k: v for k, v in base.items() if v is not None}
    return jwt.encode(base, key, algorithm=alg, headers={"kid": kid})


@pytest.mark.parametrize(
    ("claims", "kw"),
    [
        ({"exp": int(time.time()) - 10}, {}),
        ({"nbf": int(time.time()) + 3600}, {}),
        ({"iss": "someone-else"}, {}),
        ({"aud": "another-api"}, {}),
        ({"aud": None}, {}),
        ({"jti": None}, {}),
        ({}, {"key": "a-different-secret-that-is-long-enough-000"}),
        ({}, {"kid": "k9"}),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "issuer",
        "audience",
        "no-aud",
        "no-jti",
        "bad-signature",
        "unknown-kid",
    ],
)
async def test_tokens_failing_a_check_are_refused(demo, claims, kw):
    token = _forge(claims, **kw)
    r = await demo.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.json()["code"] in {"token_invalid", "not_authenticated"}


async def test_alg_none_is_refused(demo):
    token = jwt.encode({"sub": "u-admin", "exp": int(time.time()) + 60}, None, algorithm="none")
    r = await demo.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


async def test_a_valid_forged_token_works_so_the_checks_above_mean_something(demo):
    r = await demo.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {_forge({})}"})
    assert r.status_code == 200 and r.json()["role"] == "admin"


async def test_key_rotation_accepts_previous_kid(tmp_path, demo_template):
    old = "old-secret-0123456789-abcdefghijklmnopqrstuvw"
    settings = Settings(
        data_dir=str(tmp_path),
        jwt_secret=SECRET,
        jwt_kid="k2",
        jwt_previous_keys=f"k1:{old}",
        **FAST,
    )
    shutil.copyfile(demo_template, settings.database)
    app = create_app(settings)
    async with AsyncTestClient(app=app) as client:
        old_token = _forge({}, key=old, kid="k1")
        r = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {old_token}"})
        assert r.status_code == 200
        s = await login(client, "admin")
        assert jwt.get_unverified_header(s.tokens["access_token"])["kid"] == "k2"
        # an old kid with the new secret is not accepted
        mixed = _forge({}, key=SECRET, kid="k1")
        r = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {mixed}"})
        assert r.status_code == 401


def test_serve_refuses_to_start_without_a_secret_unless_demo(tmp_path):
    with pytest.raises(ConfigError, match="INSPECTSYNC_JWT_SECRET"):
        Settings(data_dir=str(tmp_path)).signing_keys()
    kid, keys = Settings(data_dir=str(tmp_path), demo=True).signing_keys()
    assert len(keys[kid]) >= 32
    # kept across restarts
    assert Settings(data_dir=str(tmp_path), demo=True).signing_keys()[1] == keys
    with pytest.raises(ConfigError):
        Settings(data_dir=str(tmp_path), jwt_secret="short").signing_keys()
