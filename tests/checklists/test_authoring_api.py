"""Checklist authoring over HTTP: drafts, publication, pins, scoped reading, languages,
import/export and role checks, on the seeded demo world."""

from __future__ import annotations

import copy
from typing import Any

from checklists.loader import decode_template, template_from_obj
from tests.conftest import Session, login

API = "/api/v1/checklists"
REF = [{"document": "EU GMP Annex 2", "section": "Part A: Seed lot and cell bank system"}]


def _item(content: dict[str, Any], key: str) -> dict[str, Any]:
    for section in content["sections"]:
        for item in section["items"]:
            if item["key"] == key:
                return item
    raise AssertionError(f"no item {key!r}")


def _section_of(content: dict[str, Any], key: str) -> str:
    for section in content["sections"]:
        if any(i["key"] == key for i in section["items"]):
            return section["key"]
    raise AssertionError(f"no item {key!r}")


async def _version(s: Session, vid: str) -> dict[str, Any]:
    r = await s.get(f"{API}/versions/{vid}")
    assert r.status_code == 200, r.text
    return r.json()


async def _new_draft(admin: Session, key: str) -> dict[str, Any]:
    r = await admin.post(f"{API}/templates/{key}/versions", json={})
    assert r.status_code == 201, r.text
    return r.json()


async def _publish_changed_copy(admin: Session, key: str, note: str) -> str:
    """Open a draft copy of ``key``, change the first prompt, publish; the new id."""
    draft = await _new_draft(admin, key)
    content = draft["data"]["content"]
    first = content["sections"][0]["items"][0]
    first["prompt"] = {**first["prompt"], "en": first["prompt"]["en"] + f" ({note})"}
    r = await admin.put(f"{API}/versions/{draft['id']}", json={"content": content})
    assert r.status_code == 200, r.text
    r = await admin.post(f"{API}/versions/{draft['id']}/publish", json={"changelog": note})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "published"
    return str(draft["id"])


async def _pins(s: Session, inspection_id: str) -> dict[str, str]:
    r = await s.get(f"/api/v1/inspections/{inspection_id}")
    assert r.status_code == 200, r.text
    pins: dict[str, str] = r.json()["data"]["pins"]
    return pins


async def _current(s: Session, stage: str) -> str | None:
    r = await s.get(f"{API}/stages")
    assert r.status_code == 200, r.text
    by_stage = {row["stage_type"]: row["current_version"] for row in r.json()}
    return by_stage[stage]


# --- authoring a new version ------------------------------------------------------------


async def test_admin_drafts_edits_publishes_and_diffs_a_version(demo):
    admin = await login(demo, "admin")
    v1 = await _version(admin, "cell_bank-v1")
    assert v1["data"]["status"] == "published"

    draft = await _new_draft(admin, "cell_bank")
    vid = draft["id"]
    assert vid == "cell_bank-v2"
    assert draft["data"]["status"] == "draft"
    assert draft["data"]["version"] == 2
    # A copy of the latest version.
    assert draft["data"]["content"] == v1["data"]["content"]

    # A second open draft of the same template is refused.
    r = await admin.post(f"{API}/templates/cell_bank/versions", json={})
    assert r.status_code == 409
    assert r.json()["code"] == "already_exists"

    content = copy.deepcopy(draft["data"]["content"])
    first_section = content["sections"][0]
    last_section = content["sections"][-1]
    assert first_section["key"] != last_section["key"]
    changed_key = first_section["items"][1]["key"]
    removed_key = first_section["items"][2]["key"]
    moved = first_section["items"][-1]
    moved_key = moved["key"]
    # Nothing may depend (show_if) on what is removed or moved later.
    for item in (i for s in content["sections"] for i in s["items"]):
        if "show_if" in item:
            assert item["show_if"]["item"] not in (removed_key, moved_key)
    old_prompt = dict(first_section["items"][1]["prompt"])

    # Change a prompt.
    first_section["items"][1]["prompt"] = {
        "en": "Is the full history of the cell line documented?",
        "zh": "细胞株的完整历史是否有记录？",
    }
    # Remove an item.
    del first_section["items"][2]
    # Reorder: move the last item of the first section to the end of the last section.
    first_section["items"].remove(moved)
    last_section["items"].append(moved)
    # Add an item.
    last_section["items"].append(
        {
            "key": "cb_new_backup_site",
            "prompt": {
                "en": "Is a back-up portion of each bank stored at a second site?",
                "zh": "各细胞库是否在第二个场地保存了备份？",
            },
            "answer": "yes_no_na",
            "severity_hint": "major",
            "references": REF,
        }
    )

    r = await admin.put(f"{API}/versions/{vid}", json={"content": content})
    assert r.status_code == 200, r.text
    stored = r.json()["data"]["content"]
    assert _item(stored, changed_key)["prompt"]["en"].startswith("Is the full history")
    assert _section_of(stored, moved_key) == last_section["key"]
    assert stored["sections"][-1]["items"][-1]["key"] == "cb_new_backup_site"
    with_removed = [i["key"] for s in stored["sections"] for i in s["items"]]
    assert removed_key not in with_removed

    r = await admin.post(f"{API}/versions/{vid}/validate")
    assert r.status_code == 200, r.text
    assert r.json() == {"valid": True, "problems": []}

    # A publication needs a changelog.
    r = await admin.post(f"{API}/versions/{vid}/publish", json={"changelog": ""})
    assert r.status_code in (400, 422), r.text

    r = await admin.post(
        f"{API}/versions/{vid}/publish", json={"changelog": "Reworded history; backup site"}
    )
    assert r.status_code == 200, r.text
    published = r.json()["data"]
    assert published["status"] == "published"
    assert published["changelog"] == "Reworded history; backup site"
    assert published["published_by"] == "u-admin"
    assert published["effective_date"] is not None

    # Published means immutable: editing or publishing again is 409 version_immutable.
    r = await admin.put(f"{API}/versions/{vid}", json={"content": content})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "version_immutable"
    r = await admin.post(f"{API}/versions/{vid}/publish", json={"changelog": "again"})
    assert r.status_code == 409
    assert r.json()["code"] == "version_immutable"
    assert (await _version(admin, vid))["data"]["content"] == stored

    r = await admin.get(f"{API}/diff", params={"from": "cell_bank-v1", "to": "cell_bank-v2"})
    assert r.status_code == 200, r.text
    diff = r.json()
    assert diff["items_added"] == ["cb_new_backup_site"]
    assert diff["items_removed"] == [removed_key]
    assert diff["items_changed"][changed_key]["prompt"] == {
        "old": old_prompt,
        "new": {
            "en": "Is the full history of the cell line documented?",
            "zh": "细胞株的完整历史是否有记录？",
        },
    }
    assert diff["items_changed"][moved_key]["section"] == {
        "old": first_section["key"],
        "new": last_section["key"],
    }
    assert "cb_new_backup_site" not in diff["items_changed"]

    # The new version is what a new inspection of the stage would pin.
    assert await _current(admin, "cell_bank") == "cell_bank-v2"


async def test_invalid_draft_content_is_refused_with_the_path(demo):
    admin = await login(demo, "admin")
    draft = await _new_draft(admin, "cell_bank")
    content = copy.deepcopy(draft["data"]["content"])
    first = content["sections"][0]
    item = first["items"][1]
    item["min"] = 3
    r = await admin.put(f"{API}/versions/{draft['id']}", json={"content": content})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid_input"
    assert body["field"] == f"content.sections[{first['key']}].items[{item['key']}].min"
    # The draft is unchanged.
    assert (await _version(admin, draft["id"]))["data"]["content"] == draft["data"]["content"]


async def test_an_empty_skeleton_draft_is_reported_not_a_server_error(demo):
    # A draft made with {"copy_latest": false} holds the skeleton {"sections": []}, not a
    # valid template yet: reading it must answer 422 naming the path, as /validate does.
    admin = await login(demo, "admin")
    r = await admin.post(f"{API}/templates/cell_bank/versions", json={"copy_latest": False})
    assert r.status_code == 201, r.text
    vid = r.json()["id"]
    assert r.json()["data"]["content"]["sections"] == []
    assert (await admin.get(f"{API}/versions/{vid}")).status_code == 200
    r = await admin.post(f"{API}/versions/{vid}/validate")
    assert r.json() == {
        "valid": False,
        "problems": [
            {"field": "content.sections", "message": "a template needs at least one section"}
        ],
    }
    for url in (
        f"{API}/versions/{vid}/localized",
        f"{API}/versions/{vid}/export",
        f"{API}/diff?from=cell_bank-v1&to={vid}",
    ):
        r = await admin.get(url)
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert r.json()["code"] == "invalid_input"
        assert r.json()["field"] == "content.sections"


# --- pinning ----------------------------------------------------------------------------


async def test_started_inspections_keep_their_pins_and_new_ones_pin_current(demo):
    admin = await login(demo, "admin")
    before = await _pins(admin, "insp-ds-routine")
    assert before["l2-cellbank"] == "cell_bank-v1"

    assert await _publish_changed_copy(admin, "cell_bank", "v2") == "cell_bank-v2"
    assert await _current(admin, "cell_bank") == "cell_bank-v2"
    # The inspection already in progress keeps what it pinned.
    assert await _pins(admin, "insp-ds-routine") == before

    # A newly started inspection pins the versions current now.
    assert await _pins(admin, "insp-fill-pai") == {}
    r = await admin.post(
        "/api/v1/inspections/insp-fill-pai/transitions", json={"to": "in_progress"}
    )
    assert r.status_code == 200, r.text
    started = r.json()["data"]
    assert started["status"] == "in_progress"
    assert started["pins"] == {
        "l7-fill": "formulation_filling-v1",
        "l8-lyo": "lyophilisation-v1",
        "l9-pack": "inspection_packaging-v1",
    }

    # A later publication for a stage it covers does not reach it.
    new = await _publish_changed_copy(admin, "lyophilisation", "tightened")
    assert new == "lyophilisation-v2"
    assert await _current(admin, "lyophilisation") == "lyophilisation-v2"
    assert (await _pins(admin, "insp-fill-pai"))["l8-lyo"] == "lyophilisation-v1"
    assert await _pins(admin, "insp-ds-routine") == before


# --- who may read what ------------------------------------------------------------------


async def test_inspectors_read_only_pinned_versions_supervisors_only_published(demo):
    admin = await login(demo, "admin")
    insp = await login(demo, "insp.js1")  # team of insp-ds-routine (pins cell_bank-v1)
    sup = await login(demo, "sup.zj")
    draft = await _new_draft(admin, "cell_bank")
    assert draft["id"] == "cell_bank-v2"

    # Inspector: pinned yes; draft no; published but not pinned by any of theirs no.
    r = await insp.get(f"{API}/versions/cell_bank-v1")
    assert r.status_code == 200
    assert r.json()["data"]["template_key"] == "cell_bank"
    for vid in ("cell_bank-v2", "qc_laboratory-v1", "formulation_filling-v1"):
        r = await insp.get(f"{API}/versions/{vid}")
        assert r.status_code == 404, (vid, r.text)
        assert r.json()["code"] == "not_found"
    # The same rule holds on every read path.
    assert (await insp.get(f"{API}/versions/qc_laboratory-v1/localized")).status_code == 404
    assert (await insp.get(f"{API}/versions/qc_laboratory-v1/export")).status_code == 404
    assert (await insp.get(f"{API}/versions/cell_bank-v2/localized")).status_code == 404
    r = await insp.get(f"{API}/diff", params={"from": "cell_bank-v1", "to": "cell_bank-v2"})
    assert r.status_code == 404
    r = await insp.get(f"{API}/templates/cell_bank/versions")
    assert r.status_code == 200
    assert [v["id"] for v in r.json()] == ["cell_bank-v1"]

    # Supervisor: every published version, no drafts.
    for vid in ("cell_bank-v1", "qc_laboratory-v1", "formulation_filling-v1"):
        r = await sup.get(f"{API}/versions/{vid}")
        assert r.status_code == 200, (vid, r.text)
    r = await sup.get(f"{API}/versions/cell_bank-v2")
    assert r.status_code == 404
    r = await sup.get(f"{API}/templates/cell_bank/versions")
    assert [v["id"] for v in r.json()] == ["cell_bank-v1"]

    # Admin: the draft too.
    r = await admin.get(f"{API}/templates/cell_bank/versions")
    assert [v["id"] for v in r.json()] == ["cell_bank-v1", "cell_bank-v2"]

    # Once the draft is published it is still not pinned by insp.js1's inspections.
    r = await admin.post(f"{API}/versions/cell_bank-v2/publish", json={"changelog": "same"})
    assert r.status_code == 200, r.text
    assert (await insp.get(f"{API}/versions/cell_bank-v2")).status_code == 404
    assert (await sup.get(f"{API}/versions/cell_bank-v2")).status_code == 200


async def test_an_inspector_reads_what_their_newly_started_inspection_pins(demo):
    admin = await login(demo, "admin")
    lead = await login(demo, "insp.js2")  # lead of insp-fill-pai (planned)
    other = await login(demo, "insp.js1")  # not on insp-fill-pai
    assert (await lead.get(f"{API}/versions/formulation_filling-v1")).status_code == 404
    r = await admin.post(
        "/api/v1/inspections/insp-fill-pai/transitions", json={"to": "in_progress"}
    )
    assert r.status_code == 200, r.text
    assert (await lead.get(f"{API}/versions/formulation_filling-v1")).status_code == 200
    assert (await other.get(f"{API}/versions/formulation_filling-v1")).status_code == 404


# --- languages --------------------------------------------------------------------------


async def test_localized_version_in_chinese_by_query_or_header(demo):
    insp = await login(demo, "insp.js1")
    url = f"{API}/versions/cell_bank-v1/localized"

    r = await insp.get(url, params={"lang": "zh"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "cell_bank-v1"
    assert body["status"] == "published"
    assert body["content"]["lang"] == "zh"
    assert body["content"]["title"] == {"text": "细胞库", "lang": "zh"}
    first = body["content"]["sections"][0]["items"][0]
    assert first["prompt"] == {"text": "本场地保存了哪些级别的细胞库？", "lang": "zh"}

    r = await insp.get(url, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert r.status_code == 200
    assert r.json()["content"]["title"] == {"text": "细胞库", "lang": "zh"}

    # The query wins over the header; the default is English.
    r = await insp.get(url, params={"lang": "en"}, headers={"Accept-Language": "zh-CN"})
    assert r.json()["content"]["title"] == {"text": "Cell bank", "lang": "en"}
    r = await insp.get(url)
    assert r.json()["content"]["lang"] == "en"
    assert r.json()["content"]["title"] == {"text": "Cell bank", "lang": "en"}


async def test_missing_chinese_falls_back_in_a_draft_and_blocks_publication(demo):
    admin = await login(demo, "admin")
    draft = await _new_draft(admin, "cell_bank")
    vid = draft["id"]
    content = draft["data"]["content"]
    section = content["sections"][0]
    item = section["items"][0]
    item["prompt"] = {"en": item["prompt"]["en"], "zh": ""}
    r = await admin.put(f"{API}/versions/{vid}", json={"content": content})
    assert r.status_code == 200, r.text

    r = await admin.get(f"{API}/versions/{vid}/localized", params={"lang": "zh"})
    assert r.status_code == 200, r.text
    loc = r.json()["content"]
    assert loc["sections"][0]["items"][0]["prompt"] == {
        "text": item["prompt"]["en"],
        "lang": "en",
        "fallback": True,
    }
    # Texts present in Chinese are served without a marker.
    assert loc["sections"][0]["items"][1]["prompt"]["lang"] == "zh"
    assert "fallback" not in loc["sections"][0]["items"][1]["prompt"]

    path = f"content.sections[{section['key']}].items[{item['key']}].prompt.zh"
    r = await admin.post(f"{API}/versions/{vid}/validate")
    assert r.status_code == 200
    assert r.json()["valid"] is False
    assert r.json()["problems"][0]["field"] == path

    r = await admin.post(f"{API}/versions/{vid}/publish", json={"changelog": "half done"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert r.json()["field"] == path
    assert (await _version(admin, vid))["data"]["status"] == "draft"


# --- import / export --------------------------------------------------------------------


async def test_export_gives_a_file_that_loads_back_to_the_stored_content(demo):
    insp = await login(demo, "insp.js1")
    r = await insp.get(f"{API}/versions/cell_bank-v1/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/yaml")
    assert 'filename="cell_bank-v1.yaml"' in r.headers["content-disposition"]
    stored = (await _version(insp, "cell_bank-v1"))["data"]["content"]
    assert decode_template(r.text) == template_from_obj(stored)


async def test_import_raw_yaml_then_export_round_trips(demo):
    admin = await login(demo, "admin")
    exported = (await admin.get(f"{API}/versions/cell_bank-v1/export")).text
    original = decode_template(exported)
    changed_yaml = exported.replace("Cell bank system and qualification", "Cell bank system", 1)
    assert changed_yaml != exported

    r = await admin.post(
        f"{API}/import",
        params={"publish": "true", "changelog": "Shorter section title"},
        content=changed_yaml.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["id"] == "cell_bank-v2"
    assert rec["data"]["status"] == "published"
    assert rec["data"]["changelog"] == "Shorter section title"

    back = (await admin.get(f"{API}/versions/cell_bank-v2/export")).text
    assert decode_template(back) == decode_template(changed_yaml)
    assert decode_template(back) != original

    # Importing identical content again creates nothing.
    r = await admin.post(
        f"{API}/import", content=back.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "cell_bank-v2"


async def test_import_of_a_broken_file_names_the_path(demo):
    admin = await login(demo, "admin")
    exported = (await admin.get(f"{API}/versions/cell_bank-v1/export")).text
    broken = exported.replace("  - key: cb_history\n", "  - key: cb_history\n    min: 3\n", 1)
    assert broken != exported
    r = await admin.post(
        f"{API}/import", content=broken.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert r.json()["field"] == "body: sections[cb_system].items[cb_history].min"
    assert "only allowed on number items" in r.json()["detail"]
    # A duplicate mapping key and an empty body are refused too.
    r = await admin.post(
        f"{API}/import", content=b"key: a\nkey: b\n", headers={"Content-Type": "application/yaml"}
    )
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "body: line 2"
    r = await admin.post(f"{API}/import", content=b"", headers={"Content-Type": "application/yaml"})
    assert r.status_code == 422, r.text
    # Nothing was created.
    r = await admin.get(f"{API}/templates/cell_bank/versions")
    assert [v["id"] for v in r.json()] == ["cell_bank-v1"]


# --- roles ------------------------------------------------------------------------------


async def test_authoring_needs_an_admin_and_reading_needs_a_token(demo):
    insp = await login(demo, "insp.js1")
    sup = await login(demo, "sup.js")
    content = (await _version(insp, "cell_bank-v1"))["data"]["content"]
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", f"{API}/templates/cell_bank/versions", {"json": {}}),
        (
            "POST",
            f"{API}/templates",
            {"json": {"key": "x_new", "stage_type": "cell_bank", "title": {"en": "X"}}},
        ),
        ("PUT", f"{API}/versions/cell_bank-v1", {"json": {"content": content}}),
        ("POST", f"{API}/versions/cell_bank-v1/validate", {}),
        ("POST", f"{API}/versions/cell_bank-v1/publish", {"json": {"changelog": "x"}}),
        ("POST", f"{API}/versions/cell_bank-v1/retire", {}),
        (
            "POST",
            f"{API}/import",
            {"content": b"key: cell_bank\n", "headers": {"Content-Type": "application/yaml"}},
        ),
    ]
    for who in (insp, sup):
        for method, url, kw in calls:
            r = await who.request(method, url, **copy.deepcopy(kw))
            assert r.status_code == 403, (method, url, r.text)
            assert r.json()["code"] == "forbidden"
    for method, url, kw in [*calls, ("GET", f"{API}/versions/cell_bank-v1", {})]:
        r = await demo.request(method, url, **copy.deepcopy(kw))
        assert r.status_code == 401, (method, url, r.text)
    # Nothing changed.
    assert (await _version(insp, "cell_bank-v1"))["data"]["status"] == "published"
    admin = await login(demo, "admin")
    r = await admin.get(f"{API}/templates/cell_bank/versions")
    assert [v["id"] for v in r.json()] == ["cell_bank-v1"]
