"""The documents to file, reached from the console's inspection page in a real Chromium
against the real server: in the console's language, the page shown with the evidence
photo drawn from inside the page (nothing loaded from anywhere), the PDF downloaded and
its signed manifest checked with the key the server publishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from server.demo import DEMO_PASSWORD
from server.signing import load_public_key, verify_pdf
from tests.console.conftest import DESKTOP, Tablet, external_requests, shoot, sign_in

pytestmark = pytest.mark.slow

INSP = "insp-ds-routine"


@pytest.fixture(scope="module")
def world(server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Inspector Li's tablet raises a finding on the cell bank with a photo."""
    from PIL import Image, ImageDraw

    tmp = tmp_path_factory.mktemp("tablet")
    li = Tablet(server, tmp / "li", "insp.js1")
    li.sync()
    fid = li.run(
        "finding",
        "add",
        INSP,
        "--title",
        "LN2 level alarm not tested",
        "--classification",
        "major",
        "--item",
        "l2-cellbank:cb_history",
        "--evidence",
        "No test record of the LN2 low-level alarm in 2026.",
    ).split()[-1]
    photo = tmp / "ln2.jpg"
    img = Image.new("RGB", (640, 480), (90, 120, 160))
    ImageDraw.Draw(img).rectangle((200, 120, 440, 360), fill=(230, 230, 240))
    img.save(photo)
    li.run("finding", "edit", fid, "--photo", str(photo))
    assert "uploaded 1" in li.sync()
    return {"base": server, "fid": fid}


def test_the_inspection_page_links_the_documents_in_its_language(browser, world):
    base = world["base"]
    ctx = browser.new_context(
        viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai", accept_downloads=True
    )
    page = ctx.new_page()
    sign_in(page, base, "sup.js")
    page.goto(f"{base}/console/inspections/{INSP}")
    documents = page.get_by_test_id("documents")
    assert "缺陷项目表" in documents.inner_text() and "整改情况表" in documents.inner_text()
    documents.scroll_into_view_if_needed()
    shoot(page, "inspection-documents-zh")

    # the deficiency list opens in a new tab, in Chinese, the photo drawn from the page
    with ctx.expect_page() as opened:
        page.click('a[data-doc="deficiencies.html"]')
    doc = opened.value
    outside = external_requests(doc, base)
    doc.wait_for_load_state()
    assert doc.locator("h1").first.inner_text() == "缺陷项目表"
    assert "LN2 level alarm not tested" in doc.locator("table").first.inner_text()
    assert "NMPA 主要缺陷" in doc.content()
    width = doc.locator("figure.ev img").first.evaluate("img => img.naturalWidth")
    assert width > 0  # the thumbnail (a data: URI) is drawn
    shoot(doc, "document-deficiencies-zh")
    assert outside == []
    doc.close()

    # in English: the links follow the console's language; the PDF is signed
    page.click("a.lang")
    page.goto(f"{base}/console/inspections/{INSP}")
    link = page.locator('a[data-doc="report.pdf"]')
    assert link.get_attribute("href").endswith("report.pdf?lang=en")
    with page.expect_download() as got:
        link.click()
    download = got.value
    assert download.suggested_filename == f"{INSP}-report-en.pdf"
    pdf = Path(download.path()).read_bytes()
    r = httpx.post(
        f"{base}/api/v1/auth/login", json={"username": "sup.js", "password": DEMO_PASSWORD}
    )
    token = r.json()["access_token"]
    pem = httpx.get(
        f"{base}/api/v1/reports/public-key", headers={"Authorization": f"Bearer {token}"}
    )
    found = verify_pdf(pdf, load_public_key(pem.content))
    assert found.ok, found.problems
    assert found.manifest["lang"] == "en" and found.manifest["document"] == "report"

    with ctx.expect_page() as opened:
        page.click('a[data-doc="report.html"]')
    doc = opened.value
    doc.wait_for_load_state()
    assert doc.locator("h1").first.inner_text() == "On-site inspection report"
    shoot(doc, "document-report-en")
    ctx.close()


def test_the_chain_page_links_the_chain_dossier(browser, world):
    """From the chain page, in Chinese: the dossier downloads as the signed PDF of every
    inspection of the chain, in Chinese."""
    base = world["base"]
    ctx = browser.new_context(
        viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai", accept_downloads=True
    )
    page = ctx.new_page()
    sign_in(page, base, "sup.js")
    page.goto(f"{base}/console/inspections/{INSP}")
    page.click("dl a[href$='/chain']")
    page.wait_for_url("**/chain")
    link = page.get_by_test_id("dossier").locator("a")
    assert "产品生产链检查汇编" in link.inner_text()
    assert link.get_attribute("href").endswith("/dossier.pdf?lang=zh")
    shoot(page, "chain-dossier-zh")
    with page.expect_download() as got:
        link.click()
    download = got.value
    assert download.suggested_filename.endswith("-dossier-zh.pdf")
    found = verify_pdf(Path(download.path()).read_bytes())
    assert found.ok, found.problems
    assert found.manifest["document"] == "dossier" and found.manifest["lang"] == "zh"
    assert INSP in found.manifest["inspection_ids"]
    ctx.close()
