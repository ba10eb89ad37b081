"""The documents as PDF, rendered by the server (WeasyPrint): for the demo inspection in
Chinese and English, their text, read back with pypdf, holds the deficiency list in
order and the conclusion (the CJK font embedded); they are PDF/A; evidence is drawn as
images; the manifest they carry is signed with the server's key, checked by
``inspectsync report verify`` and by anyone with the public key, and any change to the
pages, the manifest or the key shows. The chain dossier holds every inspection of the
product's chain behind a contents page.

Rendering takes a second or two: each test renders as few PDFs as it can."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import msgspec
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject

from server.cli import main
from server.signing import ATTACHMENT, SigningKey, load_public_key, verify_pdf
from tests.conftest import login
from tests.console.test_console_http import sign_in
from tests.server.test_conclusion import INSP
from tests.server.test_documents import MISSING, PHOTO, REASON, TITLES_IN_ORDER, filed
from tests.server.test_evidence import sha


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def _embedded(writer: PdfWriter):
    names = writer.root_object["/Names"]["/EmbeddedFiles"]["/Names"]
    assert names[0] == ATTACHMENT
    return names[1].get_object()["/EF"]["/F"].get_object()


def _rewrite(pdf: bytes, change) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    change(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _reseal(pdf: bytes, edit) -> bytes:
    """The PDF with its attachment's bytes replaced by ``edit(seal dict) -> bytes``."""

    def change(writer: PdfWriter) -> None:
        stream = _embedded(writer)
        seal = msgspec.json.decode(stream.get_data())
        data = edit(seal)
        stream.set_data(data)
        params = stream.get("/Params")
        if params is not None:
            params.get_object()[NameObject("/Size")] = type(params.get_object()["/Size"])(len(data))

    return _rewrite(pdf, change)


async def test_the_report_in_chinese_and_english_signed_and_pdfa(demo, tmp_path, capsys):
    sup = await filed(demo)
    pdfs, took = {}, {}
    for lang in ("zh", "en"):
        started = time.perf_counter()
        r = await sup.get(f"/api/v1/inspections/{INSP}/report.pdf?lang={lang}")
        took[lang] = time.perf_counter() - started
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf"
        assert f'filename="{INSP}-report-{lang}.pdf"' in r.headers["content-disposition"]
        assert r.content.startswith(b"%PDF-")
        pdfs[lang] = r.content
    assert max(took.values()) < 30

    zh, en = text_of(pdfs["zh"]), text_of(pdfs["en"])
    assert "现场检查报告" in zh and "On-site inspection report" not in zh
    assert "On-site inspection report" in en and "现场检查报告" not in en
    for text, heading in ((zh, "发现的缺陷"), (en, "Deficiencies found")):
        listed = text.index(heading)
        positions = [text.index(title, listed) for title in TITLES_IN_ORDER]
        assert positions == sorted(positions), positions  # critical, major, other
    at = zh.index("六、检查结论")
    assert "不符合要求" in zh[at:] and REASON in zh[at:] and "Supervisor Chen (Jiangsu)" in zh[at:]
    at = en.index("6. Inspection conclusion")
    assert "Does not meet requirements" in en[at:] and REASON in en[at:]

    # PDF/A-3b, as its XMP metadata says
    for pdf in pdfs.values():
        xmp = PdfReader(io.BytesIO(pdf)).xmp_metadata
        assert xmp is not None
        raw = xmp.stream.get_data()
        assert b'pdfaid:part="3"' in raw and b'pdfaid:conformance="B"' in raw

    # signed: the manifest verifies with the key the server publishes
    r = await sup.get("/api/v1/reports/public-key")
    assert r.status_code == 200 and "BEGIN PUBLIC KEY" in r.text
    key_file = tmp_path / "server.pem"
    key_file.write_text(r.text)
    trusted = load_public_key(r.text.encode())
    found = verify_pdf(pdfs["zh"], trusted)
    assert found.ok, found.problems
    m = found.manifest
    assert m["document"] == "report" and m["lang"] == "zh" and m["inspection_ids"] == [INSP]
    assert m["generated_by"] == "sup.js" and m["cursor"] > 0
    assert {x["sha256"]: x["state"] for x in m["evidence"]}[MISSING] == "missing"
    assert {x["sha256"]: x["state"] for x in m["evidence"]}[sha(PHOTO)] == "stored"
    kinds = sorted(s["kind"] for s in m["signatures"])
    assert kinds == ["conclusion", "decision", "decision", "decision"]
    assert all(s["matches"] and s["received_at"] and s["content_hash"] for s in m["signatures"])
    page = " ".join(text_of(pdfs["en"]).split())
    page = page[page.index("Signatures and document manifest") :]
    assert page.count("Supervisor Chen (Jiangsu)") == 4 and page.count("matches") == 4
    assert f"Data cursor {m['cursor']}" in page

    # tampering shows: a changed page, a changed manifest, another key
    changed_page = _rewrite(
        pdfs["zh"],
        lambda w: (
            w.pages[0]["/Contents"]
            .get_object()
            .set_data(w.pages[0]["/Contents"].get_object().get_data() + b"\n0 0 m 99 99 l S\n")
        ),
    )
    found = verify_pdf(changed_page, trusted)
    assert not found.ok
    assert found.problems == ["the pages differ from those the manifest was signed with"]

    def more_recent(seal):
        seal["manifest"]["cursor"] += 1
        return msgspec.json.encode(seal)

    changed_manifest = _reseal(pdfs["zh"], more_recent)
    found = verify_pdf(changed_manifest, trusted)
    assert not found.ok and found.problems == [
        "the signature does not match the manifest (changed after signing)"
    ]

    forger = SigningKey(tmp_path / "forger.pem")

    def forged(seal):
        manifest = {**seal["manifest"], "key_sha256": forger.fingerprint()}
        return forger.seal(manifest)

    forged_pdf = _reseal(pdfs["zh"], forged)
    assert verify_pdf(forged_pdf).ok  # consistent in itself ...
    found = verify_pdf(forged_pdf, trusted)  # ... but not by the server's key
    assert found.problems == ["signed with another key than the trusted one"]

    # the CLI: 0 for the document as made, 1 for each changed one
    for name, pdf, code in (
        ("report.pdf", pdfs["zh"], 0),
        ("page.pdf", changed_page, 1),
        ("manifest.pdf", changed_manifest, 1),
        ("forged.pdf", forged_pdf, 1),
    ):
        path = tmp_path / name
        path.write_bytes(pdf)
        capsys.readouterr()
        assert main(["report", "verify", str(path), "--key", str(key_file)]) == code, name
        out = capsys.readouterr().out
        assert ("OK:" in out) == (code == 0) and ("FAILED:" in out) == (code == 1), out
        assert f"report (zh) of {INSP}" in out
    # without --key: the server's own key from its data directory
    data_dir = Path(demo.app.state.services.settings.data_dir)
    assert (
        main(["report", "verify", str(tmp_path / "report.pdf"), "--data-dir", str(data_dir)]) == 0
    )
    assert main(["report", "verify", str(tmp_path / "nope.pdf"), "--key", str(key_file)]) == 2


async def test_the_deficiency_list_draws_the_evidence_and_the_console_serves_it(demo):
    await filed(demo)
    assert (await sign_in(demo, "sup.js", lang="zh")).status_code == 303
    r = await demo.get(f"/console/inspections/{INSP}/deficiencies.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert "deficiencies-zh.pdf" in r.headers["content-disposition"]
    reader = PdfReader(io.BytesIO(r.content))
    raw = "\n".join(p.extract_text() for p in reader.pages)
    text = " ".join(raw.split())  # table cells wrap
    assert "缺陷项目表" in text
    positions = [text.index(title) for title in TITLES_IN_ORDER]
    assert positions == sorted(positions)
    assert "缺失：服务器尚未收到该文件" in raw.replace("\n", "")
    # each file's SHA-256 in a footnote of the page that shows it
    assert f"[1] SHA-256 {sha(PHOTO)}" in text and f"[2] SHA-256 {MISSING}" in text
    images = [
        x.get_object()
        for page in reader.pages
        for x in (page["/Resources"].get("/XObject") or {}).values()
        if x.get_object().get("/Subtype") == "/Image"
    ]
    assert images, "the photo's thumbnail is drawn"
    assert verify_pdf(r.content).ok
    # other people, other scope: as every report route
    zj = await login(demo, "sup.zj")
    assert (await zj.get(f"/api/v1/inspections/{INSP}/deficiencies.pdf")).status_code == 404


async def test_the_chain_dossier_holds_every_inspection_of_the_chain(demo):
    await filed(demo)
    zj = await login(demo, "sup.zj")  # another authority: the chain view's rule
    started = time.perf_counter()
    r = await zj.get("/api/v1/products/prod-zv101/dossier.pdf?lang=en")
    took = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert took < 60
    found = verify_pdf(r.content)
    assert found.ok, found.problems
    ids = found.manifest["inspection_ids"]
    assert INSP in ids and len(ids) == len(set(ids)) == 4
    assert found.manifest["document"] == "dossier"
    assert found.manifest["product_id"] == "prod-zv101"
    text = text_of(r.content)
    contents = text.index("Contents")
    first = text.index("On-site inspection report", contents + 1)
    for title in TITLES_IN_ORDER:
        assert title in text[first:]
    assert text.count("Deficiency list") >= 4 and text.count("Rectification status table") >= 4
    assert "Does not meet requirements" in text
    li = await login(demo, "insp.js1")
    r = await li.get("/api/v1/products/prod-zv101/dossier.pdf")
    assert r.status_code == 403
    assert (await zj.get("/api/v1/products/prod-none/dossier.pdf")).status_code == 404
    assert (await zj.get("/api/v1/products/prod-zv101/dossier.pdf?lang=de")).status_code == 400


def test_a_key_is_made_once_and_kept(tmp_path):
    key = SigningKey(tmp_path / "keys" / "k.pem")
    first = key.fingerprint()
    assert (tmp_path / "keys" / "k.pem").stat().st_mode & 0o777 == 0o600
    assert SigningKey(tmp_path / "keys" / "k.pem").fingerprint() == first
    raw = base64.b64encode(load_public_key(key.public_pem().encode()).public_bytes_raw())
    assert load_public_key(raw).public_bytes_raw() == key.public.public_bytes_raw()


def test_instances_starting_together_keep_one_key(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "shared" / "k.pem"
    with ThreadPoolExecutor(8) as pool:
        prints = set(pool.map(lambda _: SigningKey(path).fingerprint(), range(16)))
    assert len(prints) == 1
    assert [p.name for p in path.parent.iterdir()] == ["k.pem"]  # no scratch file left


async def test_the_chain_page_links_the_dossier_in_the_consoles_language(demo):
    """The console's chain page links the chain dossier (the console's own route, its
    session), in the console's language; the link answers the signed PDF to a
    supervisor of another authority (the chain view's rule), never without a session."""
    for lang in ("en", "zh"):
        assert (await sign_in(demo, "sup.zj", lang=lang)).status_code == 303
        page = await demo.get("/console/products/prod-zv101/chain")
        assert page.status_code == 200
        href = f"/console/products/prod-zv101/dossier.pdf?lang={lang}"
        assert f'href="{href}"' in page.text
        assert ("产品生产链检查汇编" in page.text) == (lang == "zh")
    r = await demo.get(href)  # zh, the last one signed in
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == 'attachment; filename="prod-zv101-dossier-zh.pdf"'
    found = verify_pdf(r.content)
    assert found.ok, found.problems
    assert found.manifest["document"] == "dossier" and found.manifest["lang"] == "zh"
    assert found.manifest["product_id"] == "prod-zv101"
    assert found.manifest["generated_by"] == "sup.zj"
    assert "现场检查报告" in text_of(r.content)
    assert (await demo.get("/console/products/prod-none/dossier.pdf")).status_code == 404
    assert (await demo.get("/console/products/prod-zv101/dossier.pdf?lang=fr")).status_code == 400
    # inspectors have no console session (the sign-in refuses them): no link to follow
    assert (await sign_in(demo, "insp.js1")).status_code == 403
    r = await demo.get(href, follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].startswith("/?next=")
