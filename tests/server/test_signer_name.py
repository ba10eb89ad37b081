"""A signature prints the account's own name, over HTTP: the login answer names it for
the tablet to show, and a sign-off pushed with a typed name (an older tablet) is stored,
pulled, listed in the signatures API, exported and printed in the report with the
pushing account's name instead."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sync.client import HttpTransport, Tablet
from sync.models import Role, User
from sync.signatures import printed_name
from tests.conftest import login

INSP = "insp-ds-routine"  # Jiangsu leads; team insp.js1 (Li) + insp.js2 (Zhao)
LI = "Inspector Li (Jiangsu)"
TYPED = "Li Wei, head of QA"


async def test_a_sign_off_shows_the_account_name_whatever_the_tablet_typed(demo, tmp_path: Path):
    s = await login(demo, "insp.js1", device={"name": "old tablet"})
    assert s.tokens["display_name"] == LI  # the login answer names the account
    r = await demo.post("/api/v1/auth/refresh", json={"refresh_token": s.tokens["refresh_token"]})
    assert r.status_code == 200 and r.json()["display_name"] == LI
    tokens = r.json()
    li = Tablet(
        tmp_path / "li.db",
        HttpTransport(
            "http://testserver.local",
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            client=demo,
        ),
        device_id=s.tokens["device_id"],
    )
    await li.sync()
    li.edit(
        "signoff",
        "s-typed",
        {
            "inspection_id": INSP,
            "scope": "link:l2-cellbank",
            "signer_name": TYPED,  # what an older tablet still sends
            "meaning": "authored",
            "signed_at": "2026-12-01T10:00:00+08:00",
            "incomplete_reason": "records held at the MAH",
        },
    )
    await li.sync()
    assert li.results("rejected") == []
    assert li.view("signoff", "s-typed")["signer_name"] == LI  # pulled back as stored

    sup = await login(demo, "sup.js")
    sigs = (await sup.get(f"/api/v1/review/inspections/{INSP}/signatures")).json()
    (sig,) = [x for x in sigs if x["kind"] == "signoff"]
    assert sig["signer_name"] == LI and sig["signed_by"] == s.tokens["user_id"]
    export = await sup.get(f"/api/v1/inspections/{INSP}/export.json")
    assert export.status_code == 200 and LI in export.text and TYPED not in export.text
    trail = await sup.get("/api/v1/audit/history/signoff/s-typed")
    assert trail.status_code == 200 and TYPED not in trail.text  # ignored, kept nowhere
    for lang in ("en", "zh"):
        report = await sup.get(f"/api/v1/inspections/{INSP}/report.html", params={"lang": lang})
        assert report.status_code == 200
        assert LI in report.text and TYPED not in report.text


def test_the_printed_name_is_the_display_name_else_the_username():
    def user(display_name: str) -> User:
        return User(
            id="u-1",
            username="insp.x",
            display_name=display_name,
            role=Role.INSPECTOR,
            authority_id="js-mpa",
            password_hash="",
            created_at=datetime(2026, 1, 1),
        )

    assert printed_name(user("Inspector Xu"), "ignored") == "Inspector Xu"
    assert printed_name(user("  "), "ignored") == "insp.x"
    assert printed_name(None, "insp.gone") == "insp.gone"  # no account on record
