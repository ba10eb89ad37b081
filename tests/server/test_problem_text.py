"""Problem details in Chinese or English by Accept-Language: the catalogue is complete
(every code, both languages, every field the engine names), and answers follow it."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

import sync.errors
from server.auth import AuthError, RateLimited, ReauthenticationFailed
from server.overload import Overload
from server.problem_text import DETAILS, TITLES
from server.problems import CODES, localised
from tests.conftest import login

ROOT = Path(__file__).resolve().parents[2]


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_code_has_a_title_and_a_detail_in_both_languages():
    assert set(TITLES) == set(CODES)
    for code in CODES:
        assert code in DETAILS, code
    for key, entry in [*TITLES.items(), *DETAILS.items()]:
        assert set(entry) == {"en", "zh"}, key
        assert entry["en"].strip() and entry["zh"].strip(), key
        assert re.search(r"[\u4e00-\u9fff]", entry["zh"]), f"{key}: zh has no Chinese"
        # both say the same things: the same values filled in
        assert placeholders(entry["en"]) == placeholders(entry["zh"]), key
    for key in DETAILS:
        code, _, field = key.partition("@")
        assert code in CODES, key
        assert ("{at}" in DETAILS[key]["zh"]) == (not field), key


def domain_codes() -> dict[str, str]:
    """Class name -> code of every domain error the engine and server raise."""
    classes = [
        sync.errors.DomainError,
        *vars(sync.errors).values(),
        RateLimited,
        ReauthenticationFailed,
    ]
    return {
        c.__name__: c.code
        for c in classes
        if isinstance(c, type) and issubclass(c, sync.errors.DomainError)
    }


def raised_fields() -> set[tuple[str, str]]:
    """(code, field) of every domain error raised with a literal field in sync/,
    server/ and checklists/, and of every HTTPException's extra code and field."""
    codes = domain_codes()
    found: set[tuple[str, str]] = set()
    files = [p for d in ("sync", "server", "checklists") for p in (ROOT / d).rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            kw = {k.arg: k.value for k in node.keywords}
            if node.func.id in codes and isinstance(kw.get("field"), ast.Constant):
                found.add((codes[node.func.id], kw["field"].value))
            extra = kw.get("extra")
            if isinstance(extra, ast.Dict):
                members = {
                    k.value: v.value
                    for k, v in zip(extra.keys, extra.values, strict=True)
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
                }
                if "code" in members and "field" in members:
                    found.add((members["code"], members["field"]))
    return found


def test_every_field_the_engine_names_has_its_own_chinese_detail_or_a_generic_one():
    found = raised_fields()
    assert len(found) > 40  # really read the code
    # a field-specific entry for each domain error raised naming a field; the headers of
    # the tus protocol and the like fall back on their code's entry, which names them
    generic_ok = {"validation_failed", "tus_version_unsupported", "range_not_satisfiable"}
    generic_ok |= {"unsupported_media_type", "not_authenticated", "token_invalid"}
    missing = sorted(
        f"{code}@{field}"
        for code, field in found
        if code not in generic_ok and f"{code}@{field}" not in DETAILS
    )
    assert not missing, f"server/problem_text.py DETAILS lacks: {missing}"


def test_auth_errors_use_codes_of_the_table():
    assert AuthError("x", "invalid_credentials").code in CODES


def test_catalogue_lookup_is_most_specific_first():
    assert localised("invalid_input", "zh", {"field": "reason"}) == (
        "输入不符合规则",
        "请填写理由。",
    )
    # list indexes and sub-fields fall back on the field itself
    _, detail = localised("invalid_input", "zh", {"field": "links[2].id"})
    assert detail == DETAILS["invalid_input@links"]["zh"]
    # a field without its own entry is named after the code's sentence
    _, detail = localised("not_found", "zh", {"field": "organisation_id"})
    assert detail == "该对象不存在，或您无权查看（字段：organisation_id）。"
    _, detail = localised("not_found", "en", {})
    assert detail == "It does not exist, or you may not see it."
    _, detail = localised("rate_limited", "zh", {"retry_after": 30})
    assert detail == "失败次数过多，请在 30 秒后重试。"


async def test_an_error_in_chinese_when_asked_and_english_otherwise(demo):
    # each attempt as another (unknown) user: five failures of one would be rate-limited
    def bad(n: int = 0) -> dict:
        return {"username": f"nobody{n}", "password": "wrong-password"}

    r = await demo.post("/api/v1/auth/login", json=bad(), headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 401
    body = r.json()
    assert body["code"] == "invalid_credentials"  # codes unchanged
    assert body["title"] == "用户名或密码错误"
    assert body["detail"] == "用户名或密码错误。"
    assert body["detail_en"] == "wrong username or password"
    assert r.headers["content-language"] == "zh"
    assert "Accept-Language" in r.headers["vary"]

    english = ({}, {"Accept-Language": "en-GB,zh;q=0.9"}, {"Accept-Language": "fr"})
    for n, header in enumerate(english, 1):
        r = await demo.post("/api/v1/auth/login", json=bad(n), headers=header)
        assert r.json()["title"] == "Wrong username or password", header
        assert "detail_en" not in r.json()
        assert r.headers["content-language"] == "en"
    # Chinese asked before English (by order or by q-value) wins
    for n, accept in enumerate(("fr, zh-Hans;q=0.5, en;q=0.4", "en;q=0.3, zh-TW;q=0.8"), 5):
        r = await demo.post("/api/v1/auth/login", json=bad(n), headers={"Accept-Language": accept})
        assert r.json()["title"] == "用户名或密码错误", accept


async def test_chinese_problems_name_the_field_and_translate_validation_errors(demo):
    zh = {"Accept-Language": "zh"}
    s = await login(demo, "insp.js1")
    r = await s.post("/api/v1/sync/pull", json={"cursor": "not-ours"}, headers=zh)
    assert r.status_code == 422
    assert r.json()["field"] == "cursor"
    assert r.json()["detail"] == "该游标不是本服务器生成的，请不带游标重新拉取。"

    admin = await login(demo, "admin")
    r = await admin.post(
        "/api/v1/organisations", json={"data": {"name": "X", "kind": 7}}, headers=zh
    )
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "validation_failed" and body["field"] == "data.kind"
    assert body["title"] == "请求格式有误，或某字段类型不对"
    assert body["detail"].endswith("（字段：data.kind）。")
    assert body["errors"][0]["message"] == "应为 str 类型，实际为 int"
    r = await admin.post("/api/v1/organisations", json={"data": {"name": "X"}}, headers=zh)
    assert r.json()["errors"][0]["message"] == "缺少必填字段 kind"

    r = await admin.get("/api/v1/nothing-here", headers=zh)
    assert r.status_code == 404 and r.json()["title"] == "未找到"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_overload_answer_in_both_languages(lang):
    overload = Overload(
        max_in_flight=1, max_pushes_in_flight=1, max_event_streams=1, retry_after_seconds=2
    )
    headers, body = overload._answers[("requests in flight", lang)]
    assert (b"content-language", lang.encode()) in headers
    text = body.decode()
    assert '"code":"overloaded"' in text
    if lang == "zh":
        assert "请在 2 秒后重试" in text and "detail_en" in text
    else:
        assert "try again in 2 s" in text and "detail_en" not in text
