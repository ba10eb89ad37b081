"""The admin's checklist pages over HTTP (the app in-process): admins only, CSRF on every
form, a draft edited through its form with the problem shown at its field, publish,
retire, diff, import and export. The browser journey is in
test_console_checklists_browser.py."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

import yaml

from checklists.schema import DOCUMENTS
from tests.conftest import login
from tests.console.test_console_http import csrf_of, sign_in

BASE = "/console/admin/checklists"


class _Form(HTMLParser):
    """The fields a browser would send for the form posting to ``action``: inputs
    (checkboxes when checked), the selected option of each select, textareas; no
    button (the caller names the one pressed)."""

    def __init__(self, action: str) -> None:
        super().__init__(convert_charrefs=True)
        self.action = action
        self.inside = False
        self.fields: dict[str, str] = {}
        self.select: str | None = None
        self.first_option: str | None = None
        self.option: str | None = None
        self.area: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action") == self.action
        if not self.inside:
            return
        name = a.get("name", "")
        if tag == "input" and name and a.get("type") not in ("file", "submit"):
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.fields[name] = "on"
            else:
                self.fields[name] = a.get("value", "")
        elif tag == "select":
            self.select, self.first_option = name, None
        elif tag == "option" and self.select:
            value = a.get("value")
            self.option = value
            if self.first_option is None:
                self.first_option = value if value is not None else ""
                self.fields.setdefault(self.select, self.first_option)
            if "selected" in a:
                self.fields[self.select] = value if value is not None else "\0text"
        elif tag == "textarea":
            self.area = name
            self.fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self.area:
            self.fields[self.area] += data
        elif self.select and self.fields.get(self.select) == "\0text":
            self.fields[self.select] = data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.area = None


def form_of(html: str, action: str) -> dict[str, str]:
    parser = _Form(action)
    parser.feed(html)
    assert parser.fields, f"no form posting to {action}"
    return parser.fields


def field_error(html: str, name: str) -> str:
    """The problem shown at field ``name`` (its message next to it), or ''."""
    assert f'id="{name}"' in html, f"no field {name}"
    m = re.search(rf'<span class="field-error" id="{re.escape(name)}-error"[^>]*>([^<]*)<', html)
    return m.group(1) if m else ""


async def item_prefix(client, vid: str, key: str) -> str:
    html = (await client.get(f"{BASE}/versions/{vid}/edit")).text
    m = re.search(rf'<details class="ck-item" id="(s\d+_i\d+)" data-item="{key}"', html)
    assert m, key
    return m.group(1)


async def test_checklist_pages_are_for_admins_only(demo):
    # signed out: the sign-in page (GET) or refused (POST)
    r = await demo.get(BASE, follow_redirects=False)
    assert r.status_code in (302, 303) and r.headers["location"].startswith("/?next=")
    # a supervisor: the forbidden page, for every page and form
    await sign_in(demo, "sup.js", lang="en")
    token = csrf_of((await demo.get("/console/queue")).text)
    assert 'href="/console/admin/checklists"' not in (await demo.get("/console/queue")).text
    for url in (
        BASE,
        f"{BASE}/cell_bank",
        f"{BASE}/cell_bank-v1",
        f"{BASE}/versions/cell_bank-v1",
        f"{BASE}/versions/cell_bank-v1/export.yaml",
        f"{BASE}/cell_bank/diff",
    ):
        r = await demo.get(url)
        assert r.status_code == 403 and "You may not do this." in r.text, url
    for url in (f"{BASE}/cell_bank/drafts", f"{BASE}/versions/cell_bank-v1/retire"):
        r = await demo.post(url, data={"_csrf": token})
        assert r.status_code == 403, url
    # an admin: every template, by its title, in the page's language
    await sign_in(demo, "admin", lang="zh")
    page = await demo.get(BASE)
    assert page.status_code == 200 and "检查表模板" in page.text and "细胞库" in page.text
    assert page.text.count("<tr data-template=") == 13
    await sign_in(demo, "admin", lang="en")
    page = await demo.get(BASE)
    assert "Checklist templates" in page.text and "Cell bank" in page.text


async def test_every_checklist_form_needs_its_token(demo):
    admin = await login(demo, "admin")
    await sign_in(demo, "admin", lang="en")
    r = await demo.post(f"{BASE}/cell_bank/drafts", data={"_csrf": "nope"})
    assert r.status_code == 403 and "This form has expired" in r.text
    token = csrf_of((await demo.get(f"{BASE}/cell_bank")).text)
    r = await demo.post(f"{BASE}/cell_bank/drafts", data={"_csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    vid = "cell_bank-v2"
    fields = form_of(
        (await demo.get(f"{BASE}/versions/{vid}/edit")).text, f"{BASE}/versions/{vid}/edit"
    )
    posts = [
        (f"{BASE}/versions/{vid}/edit", {**fields, "step": "save"}),
        (f"{BASE}/versions/{vid}/publish", {"changelog": "x"}),
        (f"{BASE}/versions/cell_bank-v1/retire", {}),
        (f"{BASE}/cold_chain/drafts", {}),
    ]
    for url, data in posts:
        data = {k: v for k, v in data.items() if k != "_csrf"}
        r = await demo.post(url, data=data)
        assert r.status_code == 403, url
    r = await demo.post(
        f"{BASE}/import", files={"file": ("x.yaml", b"key: x\n", "application/yaml")}
    )
    assert r.status_code == 403
    # nothing happened
    versions = (await admin.get("/api/v1/checklists/templates/cell_bank/versions")).json()
    assert [(v["id"], v["data"]["status"]) for v in versions] == [
        ("cell_bank-v1", "published"),
        ("cell_bank-v2", "draft"),
    ]
    cold = (await admin.get("/api/v1/checklists/templates/cold_chain/versions")).json()
    assert len(cold) == 1


async def test_edit_a_draft_problem_at_its_field_then_publish_and_diff(demo):
    admin = await login(demo, "admin")
    await sign_in(demo, "admin", lang="en")
    page = await demo.get(f"{BASE}/cell_bank")
    assert "v1" in page.text and "in force" in page.text
    r = await demo.post(
        f"{BASE}/cell_bank/drafts",
        data={"_csrf": csrf_of(page.text), "from": "cell_bank-v1"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"{BASE}/versions/cell_bank-v2/edit"
    edit_url = r.headers["location"]
    html = (await demo.get(edit_url)).text
    assert "No problem found: this draft can be published." in html
    n = await item_prefix(demo, "cell_bank-v2", "cb_storage_temp")
    fields = form_of(html, edit_url)
    assert fields[f"{n}_answer"] == "number" and fields[f"{n}_min"] == "-196"
    assert fields[f"{n}_prompt_zh"] == "检查时独立探头显示的温度"

    # min above max: not saved, the problem shown at the minimum
    bad = {**fields, f"{n}_min": "-100", f"{n}_max": "-150", "step": "save"}
    r = await demo.post(edit_url, data=bad)
    assert r.status_code == 422
    assert field_error(r.text, f"{n}_min") == "The minimum is greater than the maximum."
    assert f'id="{n}_min" aria-invalid="true"' in r.text
    assert 'value="-100"' in r.text  # what was typed is kept
    assert f'<details class="ck-item" id="{n}" data-item="cb_storage_temp" open>' in r.text
    stored = (await admin.get("/api/v1/checklists/versions/cell_bank-v2")).json()
    assert stored["rev"] == 1  # nothing saved

    # not a number: at its field too
    r = await demo.post(edit_url, data={**fields, f"{n}_max": "cold", "step": "save"})
    assert r.status_code == 422 and field_error(r.text, f"{n}_max") == "Not a number."

    # an empty Chinese prompt saves (a draft may lack a language) but stops publishing,
    # shown at that field
    r = await demo.post(
        edit_url,
        data={**fields, f"{n}_prompt_zh": "", f"{n}_max": "-140", "step": "save"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    html = (await demo.get(r.headers["location"])).text
    assert "Saved." in html
    assert field_error(html, f"{n}_prompt_zh").startswith("Missing: both Chinese and English")
    # the draft's own page says so too, linking to the field
    view = (await demo.get(f"{BASE}/versions/cell_bank-v2")).text
    assert f'href="{BASE}/versions/cell_bank-v2/edit#{n}_prompt_zh"' in view
    assert (
        "cb_storage_temp › Prompt (Chinese)" in view
        and 'action="' not in view.split('data-testid="problems"')[1].split("</div>")[0]
    )
    token = csrf_of(html)
    r = await demo.post(
        f"{BASE}/versions/cell_bank-v2/publish", data={"_csrf": token, "changelog": "x"}
    )
    assert r.status_code == 422 and field_error(r.text, f"{n}_prompt_zh")

    # fixed; publishing needs a changelog
    fields = form_of(html, edit_url)
    r = await demo.post(
        edit_url,
        data={
            **fields,
            f"{n}_prompt_zh": "独立探头温度读数",
            f"{n}_severity_hint": "critical",
            "step": "save",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = await demo.post(
        f"{BASE}/versions/cell_bank-v2/publish", data={"_csrf": token, "changelog": "  "}
    )
    assert r.status_code == 422
    assert field_error(r.text, "changelog") == "Say what changed: a publication needs a changelog."
    r = await demo.post(
        f"{BASE}/versions/cell_bank-v2/publish",
        data={"_csrf": token, "changelog": "LN2 probe: upper limit -140 °C"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = await demo.get(r.headers["location"])
    assert "Published. New inspections pin this version" in page.text
    assert "LN2 probe: upper limit -140 °C" in page.text
    assert "System Administrator" in page.text and "u-admin" not in page.text  # names
    current = {
        s["stage_type"]: s["current_version"]
        for s in (await admin.get("/api/v1/checklists/stages")).json()
    }
    assert current["cell_bank"] == "cell_bank-v2"
    # audited as the API does: by the admin, each step
    events = (await admin.get("/api/v1/sync/history/checklist_version/cell_bank-v2")).json()
    assert [e["op"] for e in events] == ["create", "update", "update", "update"]
    assert {e["user_id"] for e in events} == {"u-admin"}
    assert '"status":"published"' in events[-1]["new"]
    # a published version is not edited in place
    r = await demo.get(f"{BASE}/versions/cell_bank-v2/edit", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{BASE}/versions/cell_bank-v2"
    r = await demo.post(edit_url, data={**fields, "_csrf": token, "step": "save"})
    assert r.status_code == 409 and "Only a draft can be changed" in r.text

    # the diff: the item changed, field by field
    diff = await demo.get(
        f"{BASE}/cell_bank/diff", params={"from": "cell_bank-v1", "to": "cell_bank-v2"}
    )
    assert diff.status_code == 200
    changed = diff.text.split('data-item="cb_storage_temp"')[1].split("</table>")[0]
    assert "Maximum" in changed and "-135" in changed and "-140" in changed
    assert "检查时独立探头显示的温度" in changed and "独立探头温度读数" in changed
    assert "Major / NMPA: major defect" in changed and "Critical / NMPA: serious defect" in changed
    assert diff.text.count('class="ck-changed"') == 1
    same = await demo.get(
        f"{BASE}/cell_bank/diff", params={"from": "cell_bank-v2", "to": "cell_bank-v2"}
    )
    assert "No difference." in same.text
    r = await demo.get(
        f"{BASE}/cell_bank/diff", params={"from": "cold_chain-v1", "to": "cell_bank-v2"}
    )
    assert r.status_code == 404

    # retire v1: no inspection pins it from now on; retiring twice is refused, said so
    r = await demo.post(
        f"{BASE}/versions/cell_bank-v1/retire", data={"_csrf": token}, follow_redirects=False
    )
    assert r.status_code == 303
    page = await demo.get(r.headers["location"])
    assert "Retired. No new inspection pins this version." in page.text
    r = await demo.post(f"{BASE}/versions/cell_bank-v1/retire", data={"_csrf": token})
    assert r.status_code == 409 and "only a published version can be retired" in r.text
    v1 = (await admin.get("/api/v1/checklists/versions/cell_bank-v1")).json()
    assert v1["data"]["status"] == "retired"


async def test_add_move_and_remove_items_in_the_form(demo):
    await sign_in(demo, "admin", lang="zh")
    token = csrf_of((await demo.get(f"{BASE}/qa_release")).text)
    r = await demo.post(f"{BASE}/qa_release/drafts", data={"_csrf": token}, follow_redirects=False)
    edit_url = r.headers["location"]
    fields = form_of((await demo.get(edit_url)).text, edit_url)
    count = int(fields["s0_items"])
    first, second = fields["s0_i0_key"], fields["s0_i1_key"]
    # add an item: shown, not saved yet
    r = await demo.post(edit_url, data={**fields, "step": "add_item:s0"})
    assert r.status_code == 200 and "修改尚未保存" in r.text
    fields = form_of(r.text, edit_url)
    assert int(fields["s0_items"]) == count + 1
    new = f"s0_i{count}"
    # saving it empty: the problem at the new item's field, in Chinese
    r = await demo.post(edit_url, data={**fields, "step": "save"})
    assert r.status_code == 422
    assert field_error(r.text, f"{new}_prompt_en") == "请填写中文或英文（发布需两者都有）。"
    fields = form_of(r.text, edit_url)
    fields.update(
        {
            f"{new}_key": "qa_new_check",
            f"{new}_prompt_zh": "是否有新的检查？",
            f"{new}_prompt_en": "Is there a new check?",
        }
    )
    r = await demo.post(edit_url, data={**fields, "step": f"add_ref:{new}"})
    fields = form_of(r.text, edit_url)
    fields.update({f"{new}_r0_document": "ICH Q10", f"{new}_r0_section": "3.2"})
    # move the first item down, then save
    r = await demo.post(edit_url, data={**fields, "step": "down:s0_i0"})
    fields = form_of(r.text, edit_url)
    assert (fields["s0_i0_key"], fields["s0_i1_key"]) == (second, first)
    r = await demo.post(edit_url, data={**fields, "step": "save"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    # remove it again
    fields = form_of((await demo.get(edit_url)).text, edit_url)
    assert fields[f"s0_i{count}_key"] == "qa_new_check"
    r = await demo.post(edit_url, data={**fields, "step": f"remove:s0_i{count}"})
    fields = form_of(r.text, edit_url)
    r = await demo.post(edit_url, data={**fields, "step": "save"}, follow_redirects=False)
    assert r.status_code == 303
    diff = await demo.get(f"{BASE}/qa_release/diff")
    assert "位置" in diff.text and first in diff.text and "qa_new_check" not in diff.text


async def test_import_and_export_round_trip(demo):
    admin = await login(demo, "admin")
    await sign_in(demo, "admin", lang="en")
    exported = await demo.get(f"{BASE}/versions/cold_chain-v1/export.yaml")
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    api = await admin.get("/api/v1/checklists/versions/cold_chain-v1/export")
    assert exported.text == api.text  # the same file as the API's export
    token = csrf_of((await demo.get(BASE)).text)

    # the same file again, published: nothing new
    r = await demo.post(
        f"{BASE}/import",
        data={"_csrf": token, "publish": "on"},
        files={"file": ("cold_chain.yaml", exported.content, "application/yaml")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("cold_chain-v1?done=unchanged")

    # changed: a new draft holding the file's content, exported as it was imported
    changed = exported.text.replace("key: cc_temp_ultra_low", "key: cc_temp_ultra_cold")
    assert changed != exported.text
    r = await demo.post(
        f"{BASE}/import",
        data={"_csrf": token},
        files={"file": ("cold_chain.yaml", changed.encode(), "application/yaml")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("cold_chain-v2?done=imported")
    again = await demo.get(f"{BASE}/versions/cold_chain-v2/export.yaml")
    assert again.text == changed
    as_json = await demo.get(f"{BASE}/versions/cold_chain-v2/export.json")
    assert yaml.safe_load(as_json.text) == yaml.safe_load(changed)
    diff = await demo.get(f"{BASE}/cold_chain/diff")
    assert "cc_temp_ultra_cold" in diff.text and "cc_temp_ultra_low" in diff.text

    # JSON imports as well, published with its changelog (replacing the open draft)
    r = await demo.post(
        f"{BASE}/import",
        data={"_csrf": token, "publish": "on", "changelog": "Renamed the ULT item"},
        files={"file": ("cold_chain.json", as_json.content, "application/json")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "cold_chain-v2?done=imported" in r.headers["location"]
    v2 = (await admin.get("/api/v1/checklists/versions/cold_chain-v2")).json()
    assert v2["data"]["status"] == "published" and v2["data"]["changelog"] == "Renamed the ULT item"

    # a broken file: refused at the import form, naming the place at fault
    broken = changed.replace("answer: number", "answer: numbr", 1)
    r = await demo.post(
        f"{BASE}/import",
        data={"_csrf": token},
        files={"file": ("bad.yaml", broken.encode(), "application/yaml")},
    )
    assert r.status_code == 422
    error = re.search(r'data-testid="import-error"[^>]*>([^<]*)<', r.text)
    assert error and error.group(1).startswith("bad.yaml: sections[cc_"), error
    assert ".answer" in error.group(1)
    r = await demo.post(f"{BASE}/import", data={"_csrf": token})
    assert r.status_code == 422 and "Choose a template file to import." in r.text


async def test_the_form_keeps_every_field_of_every_library_template(demo):
    """Saving a draft's form unchanged saves the same content: no field of any bundled
    template is lost or altered by the form (texts, options, references, evidence rules,
    show-if, limits, repeated sections)."""
    admin = await login(demo, "admin")
    await sign_in(demo, "admin", lang="en")
    templates = (await admin.get("/api/v1/checklists/templates")).json()
    assert len(templates) == 13
    for tpl in templates:
        key = tpl["id"]
        r = await admin.post(f"/api/v1/checklists/templates/{key}/versions", json={})
        assert r.status_code == 201, r.text
        vid = r.json()["id"]
        edit_url = f"{BASE}/versions/{vid}/edit"
        fields = form_of((await demo.get(edit_url)).text, edit_url)
        r = await demo.post(edit_url, data={**fields, "step": "save"}, follow_redirects=False)
        assert r.status_code == 303, (key, r.text[:500])
        saved = (await admin.get(f"/api/v1/checklists/versions/{vid}")).json()
        published = (await admin.get(f"/api/v1/checklists/versions/{key}-v1")).json()
        assert saved["rev"] == 2 and saved["data"]["content"] == published["data"]["content"], key


def document_options(html: str, field: str) -> dict[str, tuple[str, bool]]:
    """The reference dropdown ``field``: {value: (the text shown, selected)}."""
    m = re.search(rf'<select [^>]*name="{re.escape(field)}"[^>]*>(.*?)</select>', html, re.S)
    assert m, f"no dropdown {field}"
    return {
        unescape(value): (unescape(text), bool(selected))
        for value, selected, text in re.findall(
            r'<option value="([^"]*)"\s*(selected)?\s*>([^<]*)</option>', m.group(1)
        )
    }


async def test_the_reference_dropdown_shows_each_document_by_key_and_title(demo):
    """The admin picks a source by its title in the console's language (a foreign
    document keeps its official English title in Chinese); the form still sends the key,
    so saving keeps the reference as it was."""
    admin = await login(demo, "admin")
    await sign_in(demo, "admin", lang="zh")
    page = await demo.get(f"{BASE}/cold_chain")
    r = await demo.post(
        f"{BASE}/cold_chain/drafts", data={"_csrf": csrf_of(page.text)}, follow_redirects=False
    )
    edit_url = r.headers["location"]
    vid = edit_url.split("/")[-2]
    content = (await admin.get(f"/api/v1/checklists/versions/{vid}")).json()["data"]["content"]
    where = next(
        (si, ii, ri)
        for si, sec in enumerate(content["sections"])
        for ii, item in enumerate(sec["items"])
        for ri, ref in enumerate(item.get("references") or [])
        if ref["document"] == "China GMP (2010)"
    )
    field = "s{}_i{}_r{}_document".format(*where)
    zh = document_options((await demo.get(edit_url)).text, field)
    assert zh["China GMP (2010)"] == ("China GMP (2010) — 药品生产质量管理规范（2010年修订）", True)
    assert zh["SAMR Order No. 33: Lot Release of Biological Products (2020)"][0].endswith(
        " — 生物制品批签发管理办法"
    )
    annex_11 = "EU GMP Annex 11 — Computerised systems"
    assert zh["EU GMP Annex 11"] == (annex_11, False)  # no Chinese title of its own
    assert zh.pop("") == ("—", False)  # none chosen
    assert zh.keys() == DOCUMENTS.keys() and sum(sel for _, sel in zh.values()) == 1

    await demo.get("/console/lang", params={"to": "en", "next": "/"})
    html = (await demo.get(edit_url)).text
    en = document_options(html, field)
    assert en["China GMP (2010)"] == (
        "China GMP (2010) — Good Manufacturing Practice for Drugs (2010 revision)",
        True,
    )
    assert en["EU GMP Annex 11"] == zh["EU GMP Annex 11"]
    # the key is what the form sends: saving keeps every reference as it was
    fields = form_of(html, edit_url)
    assert fields[field] == "China GMP (2010)"
    r = await demo.post(edit_url, data={**fields, "step": "save"}, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    saved = (await admin.get(f"/api/v1/checklists/versions/{vid}")).json()["data"]["content"]
    assert saved["sections"] == content["sections"]
