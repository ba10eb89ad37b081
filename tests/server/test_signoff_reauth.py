"""How a sign-off's signer was re-authenticated at signing, over HTTP: a tablet that
checked the password on the device sends ``reauth_method`` and ``reauthenticated_at``;
an older tablet sends neither and its sign-off is still stored. The signatures API, the
console's inspection page and the documents (HTML and PDF, zh and en) say for each
sign-off whether the password was re-entered, and when."""

from __future__ import annotations

from pathlib import Path

from sync.client import Tablet
from tests.conftest import login
from tests.console.test_console_http import sign_in, tablet
from tests.server.test_report_pdf import text_of

INSP = "insp-ds-routine"  # Jiangsu leads; team insp.js1 (Li) + insp.js2 (Zhao)
AT = "2026-12-01T10:00:00+08:00"
BASE = {
    "inspection_id": INSP,
    "meaning": "authored",
    "signed_at": AT,
    "incomplete_reason": "records held at the MAH",
}


async def _signed(demo, tmp_path: Path) -> Tablet:
    li = await tablet(demo, tmp_path, "insp.js1", "li-tab")
    # this tablet checked the password on the device at signing
    li.edit(
        "signoff",
        "s-new",
        {
            **BASE,
            "scope": "link:l2-cellbank",
            "reauth_method": "device_password",
            "reauthenticated_at": "2026-12-01T09:59:30+08:00",
        },
    )
    # an older tablet: neither field, and a typed name
    li.edit("signoff", "s-old", {**BASE, "scope": "link:l3-upstream", "signer_name": "Li Wei"})
    # a value of the wrong type is refused with the field at fault
    li.edit("signoff", "s-bad", {**BASE, "scope": "link:l3-upstream", "reauth_method": 5})
    await li.sync()
    return li


async def test_each_sign_off_says_whether_the_password_was_re_entered(demo, tmp_path: Path):
    li = await _signed(demo, tmp_path)
    (refused,) = li.results("rejected")
    assert refused["id"] == "s-bad"
    assert (refused["detail"]["code"], refused["detail"]["field"]) == (
        "wrong_type",
        "reauth_method",
    )
    # stored as sent, and pulled back so
    assert li.view("signoff", "s-new")["reauth_method"] == "device_password"
    assert "reauth_method" not in li.view("signoff", "s-old")

    sup = await login(demo, "sup.js")
    sigs = (await sup.get(f"/api/v1/review/inspections/{INSP}/signatures")).json()
    by_id = {s["id"]: s for s in sigs if s["kind"] == "signoff"}
    assert set(by_id) == {"s-new", "s-old"}
    assert by_id["s-new"]["reauth_method"] == "device_password"
    assert by_id["s-new"]["reauthenticated_at"] == "2026-12-01T09:59:30+08:00"
    assert by_id["s-old"]["reauth_method"] is None
    assert by_id["s-old"]["reauthenticated_at"] is None

    # the console's inspection page, in both languages
    for lang, yes, no in (
        ("en", "password re-entered on the device at 2026-12-01 09:59", "not re-authenticated"),
        ("zh", "签署时已在设备上重新输入密码（2026-12-01 09:59）", "签署时未重新验证身份"),
    ):
        r = await sign_in(demo, "sup.js", lang=lang)
        assert r.status_code == 303
        page = await demo.get(f"/console/inspections/{INSP}")
        assert page.status_code == 200
        assert yes in page.text and no in page.text

    # the documents' signature page: HTML in both languages, and the PDF's text
    for lang, yes, no in (
        (
            "en",
            "password re-entered on the device at 2026-12-01 09:59 (UTC+8)",
            "not re-authenticated (older tablet)",
        ),
        (
            "zh",
            "签署时已在设备上重新输入密码（2026-12-01 09:59 (UTC+8)）",
            "签署时未重新验证身份（旧版平板）",
        ),
    ):
        html = await sup.get(f"/api/v1/inspections/{INSP}/report.html", params={"lang": lang})
        assert html.status_code == 200
        assert yes in html.text and no in html.text
    pdf = await sup.get(f"/api/v1/inspections/{INSP}/deficiencies.pdf", params={"lang": "en"})
    assert pdf.status_code == 200
    text = "".join(text_of(pdf.content).split())  # a narrow cell may wrap a word
    assert "passwordre-enteredonthedeviceat2026-12-0109:59" in text
    assert "notre-authenticated(oldertablet)" in text
