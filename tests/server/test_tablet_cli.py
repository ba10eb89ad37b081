"""`inspectsync tablet ...` against a real demo server: two inspectors' tablets.

Each command runs as its own process, as a person at a terminal would run it, so the
state that matters is what the state directory keeps between commands.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from server.demo import DEMO_PASSWORD
from tests.server.test_process import start_server, stop

pytestmark = pytest.mark.slow

INSP = "insp-ds-routine"
LI = "Inspector Li (Jiangsu)"  # insp.js1's display name: what its signatures print


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("server")
    proc, base = start_server(data_dir, "--demo")
    try:
        yield base, data_dir
    finally:
        stop(proc)


class Tablet:
    """One tablet: a state directory and the commands run on it."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def run(self, *args: str, code: int = 0, stdin: str = "") -> str:
        r = subprocess.run(
            [sys.executable, "-m", "server.cli", "tablet", *args, "--state", str(self.state)],
            capture_output=True,
            text=True,
            timeout=60,
            input=stdin,
            env={**os.environ, "INSPECTSYNC_PASSWORD": DEMO_PASSWORD},
        )
        assert r.returncode == code, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout + r.stderr

    def pending(self) -> int:
        m = re.search(r"pending changes:\s+(\d+)", self.run("status"))
        assert m
        return int(m.group(1))

    @property
    def config(self) -> dict:
        return json.loads((self.state / "tablet.json").read_text())


def login(base: str, tmp_path: Path, username: str) -> Tablet:
    t = Tablet(tmp_path / username)
    out = t.run("login", "--server", base, "--username", username, "--device-name", username)
    assert "registered" in out
    return t


def test_two_tablets_converge_on_a_conflicting_finding(server, tmp_path):
    base, _ = server
    js1 = login(base, tmp_path, "insp.js1")
    js2 = login(base, tmp_path, "insp.js2")
    assert stat.S_IMODE((js1.state / "tablet.json").stat().st_mode) == 0o600
    assert js1.config["device_id"] != js2.config["device_id"]

    out = js1.run("sync")
    assert "pending 0" in out
    js2.run("sync")
    listing = js1.run("inspections")
    assert INSP in listing and "l2-cellbank" in listing and "cell_bank-v1" in listing

    # js1 records a finding offline, then syncs; js2 receives it
    fid = js1.run(
        "finding",
        "add",
        INSP,
        "--title",
        "WCB inventory gaps",
        "--classification",
        "other",
        "--evidence",
        "3 vials not at their recorded positions",
        "--item",
        "l2-cellbank:cb_location_check",
    ).split()[0]
    assert fid.startswith("f_")
    assert js1.pending() == 1
    assert "pushed 1" in js1.run("sync")
    js2.run("sync")
    seen = js2.run("finding", "show", fid)
    assert "WCB inventory gaps" in seen and "l2-cellbank:cb_location_check" in seen

    # both change title and classification offline
    js1.run("finding", "edit", fid, "--title", "WCB: 3 vials missing", "--classification", "major")
    js2.run(
        "finding",
        "edit",
        fid,
        "--title",
        "Cell bank inventory discrepancies",
        "--classification",
        "critical",
    )
    assert js1.pending() == 1 and js2.pending() == 1
    assert "Cell bank inventory discrepancies" in js2.run("finding", "show", fid)

    js1.run("sync")
    out = js2.run("sync")
    assert "CONFLICT finding " + fid in out
    assert '"major"' in out and '"critical"' in out and "flagged" in out
    js1.run("sync")
    assert js1.pending() == 0 and js2.pending() == 0

    # both tablets hold the same state, with the conflicts open and every value kept
    shown1 = js1.run("finding", "show", fid)
    shown2 = js2.run("finding", "show", fid)
    assert shown1 == shown2
    assert '["classification", "title"]' in shown1
    assert shown1.count("kept value:") == 4
    for value in ("WCB: 3 vials missing", "Cell bank inventory discrepancies", "major", "critical"):
        assert f'"{value}"' in shown1

    conflicts = js1.run("conflicts", "--open")
    assert conflicts == js2.run("conflicts", "--open")
    assert "field classification" in conflicts and "field title" in conflicts
    for who in ("u-insp-js1", "u-insp-js2", js1.config["device_id"], js2.config["device_id"]):
        assert who in conflicts
    assert "open conflicts:   2" in js1.run("status")


def test_offline_answers_rejection_and_sync_state(server, tmp_path):
    base, _ = server
    js1 = login(base, tmp_path, "insp.js1")
    # offline commands need no server: nothing pulled yet, but edits are kept
    assert "cursor:      none" in js1.run("status")
    js1.run("sync")
    assert "pull cursor:      present" in js1.run("status")

    out = js1.run("answer", INSP, "l2-cellbank", "cb_history", "maybe")
    assert "probably reject" in out  # warned, but recorded
    assert js1.pending() == 1
    out = js1.run("answer", INSP, "l2-cellbank", "cb_storage_temp", "-150", "--repeat", "1")
    assert "2 change(s) pending" in out
    js1.run("answer", INSP, "l2-cellbank", "cb_tiers_held", '["mcb", "wcb"]', "--note", "both")
    assert js1.pending() == 3  # every offline edit survived between processes
    checklist = js1.run("checklist", INSP, "--link", "l2-cellbank", "--lang", "zh")
    assert "细胞库" in checklist and "-196.0..-135.0" in checklist
    assert "answer #1: -150  (pending sync)" in checklist
    assert '["mcb", "wcb"]  note: both  (pending sync)' in checklist

    out = js1.run("sync")
    assert "pushed 3, pending 0" in out
    assert f"REJECTED response {INSP}~l2-cellbank~cb_history~0 (invalid_choice" in out
    assert '"maybe"' in out
    status = js1.run("status")
    assert "pending changes:  0" in status and "rejected results: 1" in status
    assert "last sync:        never" not in status
    assert "cb_history~0" in js1.run("rejections")
    checklist = js1.run("checklist", INSP, "--link", "l2-cellbank")
    assert "answer #1: -150\n" in checklist and "pending sync" not in checklist
    assert "maybe" not in checklist  # the rejected answer is not shown as current

    # a second sync reports nothing new
    out = js1.run("sync")
    assert "REJECTED" not in out and "pending 0" in out

    # signing off a link with required items unanswered: listed, and not signed ...
    out = js1.run("signoff", INSP, "--link", "l2-cellbank", code=1)
    answered = re.search(r"(\d+) of (\d+) required items answered", out)
    assert answered and 0 < int(answered[1]) < int(answered[2])
    assert "l2-cellbank:cb_history" in out and "--incomplete-reason" in out
    assert js1.pending() == 0
    # ... unless the inspector confirms with a reason, which the server accepts. The
    # signature prints the account's name from the login, said in the language asked
    # for; an old script's typed --name is ignored, and said so
    assert js1.config["display_name"] == LI
    assert f"signs as:         {LI}\n" in js1.run("status")
    # signing needs the password typed again, never taken from the environment, and
    # a wrong one signs nothing
    sign_l2 = ("signoff", INSP, "--link", "l2-cellbank", "--incomplete-reason", "held at MAH")
    out = js1.run(*sign_l2, code=1)
    assert "signing needs your password typed again" in out
    out = js1.run(*sign_l2, "--password-stdin", stdin="not my password\n", code=1)
    assert "wrong password: not signed; 4 more wrong password(s) lock signing" in out
    assert js1.pending() == 0
    out = js1.run(
        "signoff",
        INSP,
        "--link",
        "l2-cellbank",
        "--name",
        "Li Wei",
        "--lang",
        "zh",
        "--incomplete-reason",
        "history records held at the MAH, follow-up",
        "--password-stdin",
        stdin=DEMO_PASSWORD + "\n",
    )
    assert "注意：--name 已被忽略" in out and f"签名人：{LI}（您账户的姓名" in out
    assert "在本平板上重新输入密码" in out
    out = js1.run(
        "signoff",
        INSP,
        "--link",
        "l5-viral",
        "--incomplete-reason",
        "at the follow-up",
        "--password-stdin",
        stdin=DEMO_PASSWORD + "\n",
    )
    assert f"signed as {LI} (your account's name" in out and "--name" not in out
    assert "password re-entered on this tablet at" in out
    out = js1.run("sync")
    assert "pushed 2" in out and "REJECTED" not in out
    with httpx.Client(base_url=base) as http:
        r = http.post("/api/v1/auth/login", json={"username": "sup.js", "password": DEMO_PASSWORD})
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        sigs = http.get(f"/api/v1/review/inspections/{INSP}/signatures", headers=auth).json()
    signoffs = [x for x in sigs if x["kind"] == "signoff"]
    assert sorted(x["scope"] for x in signoffs) == ["link:l2-cellbank", "link:l5-viral"]
    assert {x["signer_name"] for x in signoffs} == {LI}
    assert {x["reauth_method"] for x in signoffs} == {"device_password"}


def test_five_wrong_passwords_lock_signing_until_the_next_login(server, tmp_path):
    base, _ = server
    t = login(base, tmp_path, "insp.js2")
    t.run("sync")
    kept = (t.state / "tablet.json").read_text()
    assert DEMO_PASSWORD not in kept and '"signing_verifier"' in kept
    assert t.config["signing_verifier"]["iterations"] == 310_000
    sign = ("signoff", INSP, "--link", "l3-upstream", "--incomplete-reason", "later")
    for left in (4, 3, 2, 1):
        out = t.run(*sign, "--password-stdin", stdin="guess\n", code=1)
        assert f"{left} more wrong password(s) lock signing" in out
    out = t.run(*sign, "--password-stdin", "--lang", "zh", stdin="guess\n", code=1)
    assert "密码错误 5 次，签署已锁定" in out
    # locked: the right password does not sign either, until a login with the network
    out = t.run(*sign, "--password-stdin", stdin=DEMO_PASSWORD + "\n", code=1)
    assert "signing is locked after 5 wrong passwords" in out
    assert t.pending() == 0
    t.run("login")
    t.run(*sign, "--password-stdin", stdin=DEMO_PASSWORD + "\n")
    assert t.pending() == 1


def _photo(path: Path, seed: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (64, 48), (seed * 40 % 256, 90, 160))
    image.save(path, "JPEG")
    return path.read_bytes()


def test_a_finding_with_photos_syncs_first_and_its_photos_follow(server, tmp_path):
    base, _ = server
    js1 = login(base, tmp_path, "insp.js1")
    js1.run("sync")
    first, second = _photo(tmp_path / "ln2.jpg", 1), _photo(tmp_path / "log.jpg", 2)
    out = js1.run(
        "finding",
        "add",
        INSP,
        "--title",
        "LN2 dewar seal cracked",
        "--photo",
        str(tmp_path / "ln2.jpg"),
    )
    fid = out.splitlines()[0]
    assert "files to upload:  1" in js1.run("status")
    js1.run("finding", "edit", fid, "--photo", str(tmp_path / "log.jpg"))
    assert "files uploaded 2" in js1.run("sync")
    status = js1.run("status")
    assert "files to upload:  0" in status and "missing on server (last sync): 0" in status
    shown = js1.run("finding", "show", fid)
    hashes = [hashlib.sha256(b).hexdigest() for b in (first, second)]
    assert all(h in shown for h in hashes)

    # the supervisor gets the very bytes
    token = httpx.post(
        f"{base}/api/v1/auth/login", json={"username": "sup.js", "password": DEMO_PASSWORD}
    ).json()["access_token"]
    for h, data in zip(hashes, (first, second), strict=True):
        r = httpx.get(f"{base}/api/v1/evidence/{h}", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.content == data
    js1.run("finding", "add", INSP, "--title", "x", "--photo", str(tmp_path / "nope.jpg"), code=1)


def test_tokens_offline_and_revoked(server, tmp_path):
    base, data_dir = server
    js2 = login(base, tmp_path, "insp.js2")
    device = js2.config["device_id"]
    js2.run("sync")

    # an expired access token is refreshed, and the new pair is kept
    config = js2.config
    config["access_token"] = "expired"
    (js2.state / "tablet.json").write_text(json.dumps(config))
    js2.run("sync")
    assert js2.config["access_token"] != "expired"
    assert js2.config["refresh_token"] != config["refresh_token"]

    # logging in again reuses the device
    assert "reused" in js2.run("login") and js2.config["device_id"] == device

    # the server is unreachable: exit 2, the outbox is kept
    js2.run("answer", INSP, "l3-upstream", "up_wcb_receipt", "yes")
    config = js2.config
    config["server"] = "http://127.0.0.1:9"
    (js2.state / "tablet.json").write_text(json.dumps(config))
    out = js2.run("sync", "--retries", "0", code=2)
    assert "cannot sync" in out and "kept in the outbox" in out
    assert js2.pending() == 1
    config["server"] = base
    (js2.state / "tablet.json").write_text(json.dumps(config))

    # the device is revoked: local data is wiped, exit 3
    r = subprocess.run(
        [sys.executable, "-m", "server.cli", "devices", "revoke", device],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "INSPECTSYNC_DATA_DIR": str(data_dir)},
    )
    assert r.returncode == 0, r.stderr
    out = js2.run("sync", code=3)
    assert "wiped" in out
    assert "device_id" not in js2.config
    js2.run("status", code=1)  # no device any more: log in again
    assert "registered" in js2.run("login")
    js2.run("sync")
    assert js2.pending() == 0 and INSP in js2.run("inspections")
