"""Serving a template in one language, falling back to the other with a marker."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from checklists.schema import Template

__all__ = ["LANGS", "Lang", "localize", "pick_lang"]

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")


def pick_lang(query: str | None, accept_language: str | None) -> Lang:
    """The language asked for: an explicit ``lang`` query wins, then the first
    ``Accept-Language`` entry we serve (by q-value), else English."""
    if query:
        q = query.strip().lower()[:2]
        if q in LANGS:
            return q  # type: ignore[return-value]
    if accept_language:
        ranked: list[tuple[float, int, str]] = []
        for n, part in enumerate(accept_language.split(",")):
            tag, _, params = part.strip().partition(";")
            weight = 1.0
            if params.strip().startswith("q="):
                try:
                    weight = float(params.strip()[2:])
                except ValueError:
                    weight = 0.0
            ranked.append((-weight, n, tag.strip().lower()[:2]))
        for weight, _, tag in sorted(ranked):
            if tag in LANGS and weight < 0:  # q=0 means "not acceptable" (RFC 9110)
                return tag  # type: ignore[return-value]
    return "en"


def _is_text(value: Any) -> bool:
    return isinstance(value, dict) and set(value) <= {"en", "zh"} and bool(value)


def _localize(value: Any, lang: Lang) -> Any:
    if _is_text(value):
        text = value.get(lang, "")
        if text.strip():
            return {"text": text, "lang": lang}
        other: Lang = "zh" if lang == "en" else "en"
        return {"text": value.get(other, ""), "lang": other, "fallback": True}
    if isinstance(value, dict):
        return {k: _localize(v, lang) for k, v in value.items()}
    if isinstance(value, list):
        return [_localize(v, lang) for v in value]
    return value


def localize(template: Template, lang: Lang) -> dict[str, Any]:
    """The template as builtins with every bilingual text replaced by
    ``{"text": ..., "lang": ...}``; ``"fallback": true`` marks text served in the other
    language because the asked one is missing."""
    return {"lang": lang, **_localize(msgspec.to_builtins(template), lang)}
