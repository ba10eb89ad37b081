"""The rectification forms on the finding page, over HTTP (the app in-process): the
supervisor enters the company's response with a file (a plain multipart post, the path
without script) and assesses it; CSRF, scope, the field at fault in zh and en, the
file stored with its SHA-256 and readable from the page, the inspection's summary."""

from __future__ import annotations

import base64
import hashlib
import io
import re

from PIL import Image

from tests.conftest import login
from tests.console.test_console_http import csrf_of, sign_in
from tests.server.test_conclusion import INSP, accept_all, push_findings

PAGE = "/console/findings/f-a"
RESPOND = "/console/findings/f-a/rectification/response"
ASSESS = "/console/findings/f-a/rectification/assessments"


def png(colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "PNG")
    return out.getvalue()


def problem_at(html: str, field: str) -> str:
    """The problem shown at a field of the form, or '' if none."""
    m = re.search(
        rf'<p class="field-error" id="[a-z]+-err-{field}" data-field="{field}"[^>]*>([^<]*)<', html
    )
    return m.group(1) if m else ""


def status_shown(html: str) -> str:
    m = re.search(r'data-testid="rect-status">([^<]*)<', html)
    assert m, "no rectification status on the page"
    return m.group(1)


async def accepted_findings(demo) -> None:
    li = await login(demo, "insp.js1", device={"name": "t"})
    sup = await login(demo, "sup.js")
    await push_findings(li, {"f-a": "major", "f-b": "other"})
    for to in ("fieldwork_done", "under_review"):
        await sup.post(f"/api/v1/inspections/{INSP}/transitions", json={"to": to})
    await accept_all(sup, ["f-a", "f-b"])


RESPONSE = {
    "submitted_by": "王芳，质量保证部经理",
    "root_cause": "液氮低液位报警未纳入预防性维护计划",
    "actions": "每月测试报警并记录",
    "completion_date": "2030-01-31",
}


async def test_a_supervisor_enters_the_response_with_a_file_then_assesses_it(demo):
    await accepted_findings(demo)
    assert (await sign_in(demo, "sup.js", lang="zh")).status_code == 303
    page = await demo.get(PAGE)
    assert page.status_code == 200
    assert (
        status_shown(page.text) == "待企业回复" and 'data-testid="rect-response-form"' in page.text
    )
    assert 'data-testid="rect-assess-form"' not in page.text  # nothing to assess yet
    token = csrf_of(page.text)

    # without the form's token: refused, nothing entered
    r = await demo.post(RESPOND, data=RESPONSE, files={"files": ("a.png", png(), "image/png")})
    assert r.status_code == 403
    r = await demo.post(RESPOND, data={**RESPONSE, "_csrf": "forged"})
    assert r.status_code == 403

    # a date that is no date: the problem at that field, in Chinese, the rest kept
    r = await demo.post(RESPOND, data={**RESPONSE, "_csrf": token, "completion_date": "2030-02-30"})
    assert r.status_code == 422
    assert problem_at(r.text, "completion_date") == "请按 YYYY-MM-DD 格式填写日期。"
    assert problem_at(r.text, "root_cause") == ""
    assert "液氮低液位报警未纳入预防性维护计划</textarea>" in r.text
    # ... and a field left empty is named
    r = await demo.post(RESPOND, data={**RESPONSE, "_csrf": token, "actions": "  "})
    assert r.status_code == 422 and problem_at(r.text, "actions") == "请填写此项。"
    # a file the evidence store does not take (its bytes are text): at the file field
    r = await demo.post(
        RESPOND,
        data={**RESPONSE, "_csrf": token},
        files={"files": ("notes.png", b"just some text, not a picture", "image/png")},
    )
    assert r.status_code == 415, r.text[:300]
    assert problem_at(r.text, "files").startswith("notes.png：")
    api = await login(demo, "sup.js")
    rows = (await api.get(f"/api/v1/inspections/{INSP}/rectifications")).json()
    assert [r["status"] for r in rows if r["finding_id"] == "f-a"] == ["awaiting_response"]

    # the whole response, with a picture, posted as a plain form
    picture = png()
    sha = hashlib.sha256(picture).hexdigest()
    r = await demo.post(
        RESPOND,
        data={**RESPONSE, "_csrf": token, "rev": "0"},
        files={"files": ("alarm-test.png", picture, "image/png")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    assert r.headers["location"] == f"{PAGE}?rect=responded#rectification"
    page = await demo.get(r.headers["location"])
    assert status_shown(page.text) == "回复待评估" and "企业的回复已保存。" in page.text
    assert sha in page.text and "alarm-test.png" in page.text
    link = f"/console/rectifications/f-a/evidence/{sha}"
    assert f'href="{link}"' in page.text
    got = await demo.get(link)
    assert got.status_code == 200 and got.content == picture
    assert got.headers["content-type"] == "image/png"
    assert (await demo.get(f"{link}/thumbnail")).status_code == 200
    # the same evidence store as the API's, the response as the API reads it
    rows = (await api.get(f"/api/v1/inspections/{INSP}/rectifications")).json()
    row = next(r for r in rows if r["finding_id"] == "f-a")
    assert row["response"]["evidence_hashes"] == [sha]
    assert row["response"]["submitted_by"] == RESPONSE["submitted_by"]
    assert row["response"]["entered_by_name"] == "Supervisor Chen (Jiangsu)"
    # a hash the response does not name is not served from here
    other = hashlib.sha256(b"x").hexdigest()
    assert (await demo.get(f"/console/rectifications/f-a/evidence/{other}")).status_code == 404

    # the assessment: no outcome chosen is refused at that field
    token = csrf_of(page.text)
    r = await demo.post(ASSESS, data={"_csrf": token, "comment": "未见记录"})
    assert r.status_code == 422 and problem_at(r.text, "outcome") == "请选择评估结果。"
    r = await demo.post(
        ASSESS,
        data={"_csrf": token, "outcome": "more_needed", "comment": "未见首次月度测试记录"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = await demo.get(PAGE)
    assert status_shown(page.text) == "需企业补充整改" and "未见首次月度测试记录" in page.text

    # a second response, keeping the file; then accepted: the forms go
    token = csrf_of(page.text)
    r = await demo.post(
        RESPOND,
        data={**RESPONSE, "_csrf": token, "actions": "首次测试已完成，记录附后", "keep": sha},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = await demo.get(PAGE)
    assert status_shown(page.text) == "回复待评估"
    assert "已被后续回复取代" in page.text  # the first response stays in the history
    r = await demo.post(
        ASSESS,
        data={"_csrf": csrf_of(page.text), "outcome": "accepted", "comment": "记录齐全"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = await demo.get(PAGE)
    assert status_shown(page.text) == "整改已接受" and 'data-testid="rect-closed"' in page.text
    assert 'data-testid="rect-response-form"' not in page.text
    # assessing again is the service's refusal, shown at the outcome, in Chinese
    r = await demo.post(
        ASSESS, data={"_csrf": csrf_of(page.text), "outcome": "accepted", "comment": "again"}
    )
    assert r.status_code == 422
    refused = re.search(r'data-testid="rect-refused" data-field="outcome">([^<]+)<', r.text)
    assert refused and refused.group(1) == "整改已被接受，无需再录入。", refused

    # the inspection page counts them by state and links to the form
    insp = (await demo.get(f"/console/inspections/{INSP}")).text
    assert 'data-status="accepted" data-n="1"' in insp
    assert 'data-status="awaiting_response" data-n="1"' in insp
    assert 'href="/console/findings/f-b#rectification"' in insp


async def test_the_field_at_fault_in_english_and_the_scope_of_the_forms(demo):
    await accepted_findings(demo)
    assert (await sign_in(demo, "sup.js", lang="en")).status_code == 303
    page = await demo.get(PAGE)
    assert "Awaiting the company" in status_shown(page.text)
    token = csrf_of(page.text)
    r = await demo.post(RESPOND, data={**RESPONSE, "_csrf": token, "completion_date": "31/01/2030"})
    assert r.status_code == 422
    assert problem_at(r.text, "completion_date") == "Give a date as YYYY-MM-DD."
    r = await demo.post(RESPOND, data={**RESPONSE, "_csrf": token, "submitted_by": "x" * 201})
    assert r.status_code == 422
    assert problem_at(r.text, "submitted_by") == "Too long, or not a valid value."

    # a supervisor of another province: the finding, its forms and files do not exist
    assert (await sign_in(demo, "sup.zj", lang="en")).status_code == 303
    assert (await demo.get(PAGE)).status_code == 404
    token = csrf_of((await demo.get("/console/queue")).text)
    r = await demo.post(RESPOND, data={**RESPONSE, "_csrf": token})
    assert r.status_code == 404
    r = await demo.post(ASSESS, data={"_csrf": token, "outcome": "accepted", "comment": "ok"})
    assert r.status_code == 404
    api = await login(demo, "sup.js")
    rows = (await api.get(f"/api/v1/inspections/{INSP}/rectifications")).json()
    assert all(r["response"] is None for r in rows)

    # the admin reads it but enters nothing (the service's rule)
    assert (await sign_in(demo, "admin", lang="en")).status_code == 303
    page = await demo.get(PAGE)
    assert page.status_code == 200 and "rect-response-form" not in page.text
    assert "entered by the lead authority" in page.text

    # an inspector has no console: refused at sign-in, and a post is the sign-in page
    r = await sign_in(demo, "insp.js1", lang="en")
    assert r.status_code == 403
    r = await demo.post(RESPOND, data={**RESPONSE, "_csrf": "x"})
    assert r.status_code == 401 and 'name="username"' in r.text
    assert all(
        r["response"] is None
        for r in (await api.get(f"/api/v1/inspections/{INSP}/rectifications")).json()
    )


async def test_files_through_the_consoles_tus_uploads_need_the_csrf_header_and_scope(demo):
    """What the page's script does: tus creation and the bytes at /console/uploads with
    the session and its CSRF token in a header, then the form naming the stored hash."""
    await accepted_findings(demo)
    assert (await sign_in(demo, "sup.js", lang="zh")).status_code == 303
    token = csrf_of((await demo.get(PAGE)).text)
    picture = png("green")
    sha = hashlib.sha256(picture).hexdigest()
    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in {"sha256": sha, "inspection_id": INSP, "filename": "记录.png"}.items()
    )
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": str(len(picture)), "Upload-Metadata": meta}
    r = await demo.post("/console/uploads", headers=tus)
    assert r.status_code == 403  # no token: a page of another site cannot upload
    r = await demo.post("/console/uploads", headers={**tus, "X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = await demo.post("/console/uploads", headers={**tus, "X-CSRF-Token": token})
    assert r.status_code == 201, r.text
    where = r.headers["location"]
    assert where.startswith("/console/uploads/") and r.headers["tus-resumable"] == "1.0.0"
    chunk = {
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }
    r = await demo.patch(where, headers=chunk, content=picture)
    assert r.status_code == 403  # the bytes too
    r = await demo.patch(where, headers={**chunk, "X-CSRF-Token": token}, content=picture)
    assert r.status_code == 204 and r.headers["upload-offset"] == str(len(picture))
    r = await demo.head(where, headers={"Tus-Resumable": "1.0.0"})
    assert r.status_code == 200 and r.headers["upload-offset"] == str(len(picture))

    # the form names the stored file; the page links it
    r = await demo.post(
        RESPOND, data={**RESPONSE, "_csrf": token, "evidence": sha}, follow_redirects=False
    )
    assert r.status_code == 303
    page = await demo.get(PAGE)
    assert sha in page.text and "记录.png" in page.text
    got = await demo.get(f"/console/rectifications/f-a/evidence/{sha}")
    assert got.content == picture
    # a hash never uploaded is refused at the file field, in Chinese
    missing = hashlib.sha256(b"never sent").hexdigest()
    r = await demo.post(RESPOND, data={**RESPONSE, "_csrf": token, "evidence": missing})
    assert r.status_code == 422 and problem_at(r.text, "files")

    # a refusal comes back as words for the page's script, in the page's language
    bad = tus | {"Upload-Length": str(10**10), "X-CSRF-Token": token}
    r = await demo.post("/console/uploads", headers=bad)
    assert r.status_code == 413 and r.json()["field"] == "Upload-Length"
    assert r.json()["detail"]

    # another province's supervisor cannot upload to this inspection
    assert (await sign_in(demo, "sup.zj", lang="en")).status_code == 303
    other = csrf_of((await demo.get("/console/queue")).text)
    r = await demo.post("/console/uploads", headers={**tus, "X-CSRF-Token": other})
    assert r.status_code == 404 and r.json()["field"] == "Upload-Metadata.inspection_id"
    assert (await demo.get(f"/console/rectifications/f-a/evidence/{sha}")).status_code == 404


async def test_the_api_serves_a_rectification_file_to_whoever_sees_the_inspection(demo):
    """A file uploaded with the company's response through the console: the API's
    evidence routes serve it (bytes, metadata naming the rectification, thumbnail) to
    those who see the finding's inspection, its inspectors too (they read its
    rectifications), and to nobody else, as for a file never uploaded."""
    await accepted_findings(demo)
    assert (await sign_in(demo, "sup.js", lang="en")).status_code == 303
    page = await demo.get(PAGE)
    picture = png("blue")
    sha = hashlib.sha256(picture).hexdigest()
    r = await demo.post(
        RESPOND,
        data={**RESPONSE, "_csrf": csrf_of(page.text), "rev": "0"},
        files={"files": ("alarm-log.png", picture, "image/png")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]

    for who in ("sup.js", "insp.js1", "insp.js2", "admin"):
        s = await login(demo, who)
        got = await s.get(f"/api/v1/evidence/{sha}")
        assert got.status_code == 200, (who, got.text)
        assert hashlib.sha256(got.content).hexdigest() == sha
        assert got.headers["content-type"] == "image/png"
        meta = (await s.get(f"/api/v1/evidence/{sha}/meta")).json()
        assert meta["records"] == [{"kind": "rectification", "id": "f-a", "inspection_id": INSP}]
        assert [u["filename"] for u in meta["uploads"]] == ["alarm-log.png"]
        assert (await s.get(f"/api/v1/evidence/{sha}/thumbnail")).status_code == 200
    # another province's supervisor, an inspector of another team: no such file
    for who in ("sup.zj", "insp.zj1"):
        s = await login(demo, who)
        for suffix in ("", "/meta", "/thumbnail"):
            r = await s.get(f"/api/v1/evidence/{sha}{suffix}")
            assert r.status_code == 404, (who, suffix, r.text)
            assert r.json()["code"] == "not_found"

    # a later response that drops the file: still named by the earlier one, still served
    page = await demo.get(PAGE)
    r = await demo.post(
        RESPOND,
        data={**RESPONSE, "_csrf": csrf_of(page.text), "actions": "Redone"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    sup = await login(demo, "sup.js")
    assert (await sup.get(f"/api/v1/evidence/{sha}")).content == picture
