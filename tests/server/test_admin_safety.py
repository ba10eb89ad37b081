"""Admins cannot lock the system, and input bodies refuse fields they do not know.

Over HTTP: an admin cannot disable or demote themselves; the last active admin cannot be
disabled or demoted by anyone (the store refuses it in the transaction, so the CLI and
two admins racing each other are held too); role and authority changes are real,
audited changes; every JSON input body refuses an unknown field with a 400 naming it,
except the sync wire messages, which tolerate them (newer tablets).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from server.app import build_services
from server.demo import DEMO_PASSWORD
from sync.errors import InvalidInput
from sync.models import Role
from tests.conftest import Session, login


async def _user(admin: Session, user_id: str) -> dict[str, Any]:
    r = await admin.get(f"/api/v1/users/{user_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _new_admin(admin: Session, username: str) -> str:
    r = await admin.post(
        "/api/v1/users",
        json={
            "username": username,
            "display_name": username,
            "role": "admin",
            "authority_id": "nmpa",
            "password": DEMO_PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_an_admin_cannot_disable_or_demote_themselves(demo):
    admin = await login(demo, "admin")
    r = await admin.patch("/api/v1/users/u-admin", json={"disabled": True})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert (r.json()["code"], r.json()["field"]) == ("invalid_input", "disabled")
    r = await admin.patch("/api/v1/users/admin", json={"role": "inspector"})  # by username
    assert (r.status_code, r.json()["field"]) == (422, "role"), r.text
    me = await _user(admin, "u-admin")
    assert (me["role"], me["disabled"]) == ("admin", False)
    # what is harmless to oneself still works
    r = await admin.patch("/api/v1/users/u-admin", json={"disabled": False, "role": "admin"})
    assert r.status_code == 200, r.text


async def test_the_last_active_admin_cannot_be_disabled_or_demoted(seeded_db, settings):
    services = build_services(settings)  # as the CLI does: no user acting
    await services.store.open()
    try:
        accounts = services.accounts
        with pytest.raises(InvalidInput) as caught:
            await accounts.set_disabled("u-admin", True)
        assert caught.value.field == "disabled"
        with pytest.raises(InvalidInput) as caught:
            await accounts.update_user("u-admin", role=Role.SUPERVISOR, password="p" * 8)
        assert caught.value.field == "role"
        user = await services.store.get_user("u-admin")
        assert user is not None and (user.role, user.disabled) == (Role.ADMIN, False)
        events = await services.store.audit_events(kind="user", record_id="u-admin", limit=50)
        assert [e["op"] for e in events] == ["create"]  # nothing half-done
        # with a second active admin, either may go, but not both
        second = await accounts.add_user(
            username="admin.two",
            display_name="Two",
            role=Role.ADMIN,
            authority_id="nmpa",
            password=DEMO_PASSWORD,
        )
        assert (await accounts.set_disabled("u-admin", True)).disabled is True
        with pytest.raises(InvalidInput):
            await accounts.update_user(second.id, role=Role.INSPECTOR)
        assert (await accounts.set_disabled("u-admin", False)).disabled is False
        assert (await accounts.update_user(second.id, role=Role.INSPECTOR)).role is Role.INSPECTOR
    finally:
        await services.store.close()


async def test_two_admins_disabling_each_other_at_once_leave_one(demo):
    admin = await login(demo, "admin")
    other_id = await _new_admin(admin, "admin.two")
    other = await login(demo, "admin.two")
    answers = await asyncio.gather(
        admin.patch(f"/api/v1/users/{other_id}", json={"disabled": True}),
        other.patch("/api/v1/users/u-admin", json={"disabled": True}),
    )
    assert sorted(a.status_code for a in answers)[0] == 200
    assert all(a.status_code in (200, 401, 422) for a in answers), [a.text for a in answers]
    users = [await _user(admin, "u-admin"), await _user(admin, other_id)]
    assert [u["disabled"] for u in users].count(False) == 1


async def test_role_and_authority_changes_are_real_and_audited(demo):
    admin = await login(demo, "admin")
    inspector = await login(demo, "insp.zj2")
    assert (await inspector.get("/api/v1/review/queue")).status_code == 403
    r = await admin.patch(
        "/api/v1/users/u-insp-zj2", json={"role": "supervisor", "authority_id": "js-mpa"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["role"], r.json()["authority_id"]) == ("supervisor", "js-mpa")
    me = (await inspector.get("/api/v1/auth/me")).json()  # the next request, same token
    assert (me["role"], me["authority_id"]) == ("supervisor", "js-mpa")
    assert (await inspector.get("/api/v1/review/queue")).status_code == 200
    r = await admin.get("/api/v1/audit/events", params={"kind": "user", "record_id": "u-insp-zj2"})
    last = r.json()["events"][-1]
    assert (last["op"], last["user_id"], last["role"]) == ("update", "u-admin", "admin")
    assert json.loads(last["old"]) == {"role": "inspector", "authority_id": "zj-mpa"}
    assert json.loads(last["new"]) == {"role": "supervisor", "authority_id": "js-mpa"}
    r = await admin.patch("/api/v1/users/u-insp-zj2", json={"authority_id": "no-such"})
    assert (r.status_code, r.json()["field"]) == (422, "authority_id")
    r = await admin.patch("/api/v1/users/u-insp-zj2", json={"role": "owner"})
    assert (r.status_code, r.json()["code"]) == (400, "validation_failed")


async def test_a_disabled_users_tokens_stop_working(demo):
    admin = await login(demo, "admin")
    user = await login(demo, "insp.zj2")
    r = await admin.patch("/api/v1/users/u-insp-zj2", json={"disabled": True})
    assert r.status_code == 200
    assert (await user.get("/api/v1/auth/me")).json()["code"] == "user_disabled"
    r = await demo.post(
        "/api/v1/auth/refresh", json={"refresh_token": user.tokens["refresh_token"]}
    )
    assert (r.status_code, r.json()["code"]) == (401, "user_disabled")


# Each JSON input body, valid apart from one unknown field: a 400 naming the field.
UNKNOWN_FIELD_BODIES = [
    ("POST", "/api/v1/auth/login", {"username": "admin", "password": DEMO_PASSWORD}),
    (
        "POST",
        "/api/v1/auth/login",
        {"username": "admin", "password": DEMO_PASSWORD, "device": {"name": "t", "colour": 1}},
    ),
    ("POST", "/api/v1/auth/refresh", {"refresh_token": "x"}),
    ("POST", "/api/v1/auth/logout", {"refresh_token": "x"}),
    ("PATCH", "/api/v1/users/u-insp-zj2", {"disabled": False}),
    (
        "POST",
        "/api/v1/users",
        {
            "username": "new.user",
            "display_name": "N",
            "role": "inspector",
            "authority_id": "nmpa",
            "password": DEMO_PASSWORD,
        },
    ),
    ("POST", "/api/v1/authorities", {"data": {"name": "X", "level": "national"}}),
    ("POST", "/api/v1/inspections/insp-js-ds/transitions", {"to": "in_progress"}),
    ("POST", "/api/v1/inspections/insp-js-ds/assignments", {"user_id": "u-insp-js1"}),
    ("POST", "/api/v1/checklists/versions/cell_bank-v1/publish", {"changelog": "c"}),
    ("POST", "/api/v1/sync/conflicts/c-1/resolve", {"value": 1, "reason": "r"}),
    (
        "POST",
        "/api/v1/review/findings/f-1/decisions",
        {"decision": "accept", "reason": "r", "password": DEMO_PASSWORD},
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_FIELD_BODIES)
async def test_every_input_body_refuses_an_unknown_field(demo, method, path, body):
    admin = await login(demo, "admin")
    nested = "device" in body
    if nested:
        body = {**body}
        field = "device.colour"
    else:
        body = {**body, "colour": "blue"}
        field = "colour"
    r = await admin.request(method, path, json=body)
    assert r.status_code == 400, r.text
    assert (r.json()["code"], r.json()["field"]) == ("validation_failed", field), r.text


async def test_the_sync_messages_tolerate_unknown_fields(demo):
    tablet = await login(demo, "insp.js1", device={"name": "newer tablet"})
    r = await tablet.post("/api/v1/sync/pull", json={"cursor": None, "from_the_future": 1})
    assert r.status_code == 200, r.text
    r = await tablet.post("/api/v1/sync/push", json={"mutations": [], "from_the_future": {}})
    assert r.status_code == 200, r.text
