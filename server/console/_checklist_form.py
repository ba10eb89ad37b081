"""The draft editor's form, as plain data: a draft's content to form fields and back,
the editing steps a button asks for (add, remove, move), and a problem's path (as the
authoring service reports it) to the form field at fault.

Pure functions of values: no request, no service. The form is the state of an edit
until it is saved, so a step (add an item, move it up) changes the posted content and
shows the form again; only *Save* hands the content to ``Authoring.update_draft``,
which checks it as the API does.

Field names are positional: ``s0_title_en``, ``s0_i2_prompt_zh``, ``s0_i2_r1_document``
(reference 1 of item 2 of section 0), ``s0_i2_o0_value`` (option 0). Counts travel as
hidden fields (``sections``, ``s0_items``, ``s0_i2_refs``, ``s0_i2_opts``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from checklists.sources import SOURCES

__all__ = [
    "apply_step",
    "content_from_form",
    "document_options",
    "field_of",
    "number_text",
    "step_focus",
]

_LANGS = ("en", "zh")


def number_text(v: Any) -> str:
    """A limit as the author would type it (``5``, not ``5.0``); anything else as is."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "" if v is None else str(v)


def document_options(lang: str) -> list[tuple[str, str]]:
    """The reference dropdown's choices, by key: (key, "key — title"). A key alone
    ("PIC/S PI 041") does not say which document it is; the title does, in the
    reader's language where the document has one (a foreign document's official title
    is its English one, so the Chinese console shows that). A title that begins with
    the key says it once ("ICH Q10 — Pharmaceutical quality system")."""
    out = []
    for key, source in sorted(SOURCES.items()):
        title = (source.zh if lang == "zh" else "") or source.en
        out.append((key, f"{key} — {title.removeprefix(key + ': ')}"))
    return out


# --- form -> content ------------------------------------------------------------------


def _count(form: Mapping[str, Any], name: str, cap: int = 500) -> int:
    raw = str(form.get(name, "0"))
    return min(int(raw), cap) if raw.isdigit() else 0


def _s(form: Mapping[str, Any], name: str) -> str:
    v = form.get(name)
    return v.strip() if isinstance(v, str) else ""


def _text(form: Mapping[str, Any], name: str) -> dict[str, str]:
    return {lang: _s(form, f"{name}_{lang}") for lang in _LANGS}


def _opt_text(form: Mapping[str, Any], name: str) -> dict[str, str] | None:
    t = _text(form, name)
    return t if any(t.values()) else None


def _number(raw: str) -> float | str | None:
    """A limit: empty is none; a number is a float; anything else stays text, for the
    service's check to name the field."""
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        return raw


def _words(raw: str) -> list[str]:
    return [w.strip() for w in re.split(r"[,，;；\s]+", raw) if w.strip()]


def _item(form: Mapping[str, Any], n: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "key": _s(form, f"{n}_key"),
        "prompt": _text(form, f"{n}_prompt"),
        "answer": _s(form, f"{n}_answer"),
        "required": form.get(f"{n}_required") == "on",
        "severity_hint": _s(form, f"{n}_severity_hint") or "other",
    }
    refs = []
    for k in range(_count(form, f"{n}_refs")):
        doc, sec = _s(form, f"{n}_r{k}_document"), _s(form, f"{n}_r{k}_section")
        if doc or sec:
            refs.append({"document": doc, "section": sec})
    item["references"] = refs
    if (guidance := _opt_text(form, f"{n}_guidance")) is not None:
        item["guidance"] = guidance
    options = []
    for k in range(_count(form, f"{n}_opts")):
        value, label = _s(form, f"{n}_o{k}_value"), _text(form, f"{n}_o{k}_label")
        if value or any(label.values()):
            options.append({"value": value, "label": label})
    if options:
        item["options"] = options
    if unit := _s(form, f"{n}_unit"):
        item["unit"] = unit
    for limit in ("min", "max"):
        if (v := _number(_s(form, f"{n}_{limit}"))) is not None:
            item[limit] = v
    if require := _s(form, f"{n}_evidence_require"):
        item["evidence"] = {
            "when_answer_in": _words(_s(form, f"{n}_evidence_when")),
            "require": require,
        }
    if target := _s(form, f"{n}_show_if_item"):
        item["show_if"] = {"item": target, "answer_in": _words(_s(form, f"{n}_show_if_answers"))}
    return item


def content_from_form(form: Mapping[str, Any], key: str, stage_type: str) -> dict[str, Any]:
    """The draft content the form describes (key and stage type are the draft's own: the
    form cannot move a draft to another template)."""
    content: dict[str, Any] = {
        "key": key,
        "stage_type": stage_type,
        "title": _text(form, "title"),
    }
    if (description := _opt_text(form, "description")) is not None:
        content["description"] = description
    sections = []
    for i in range(_count(form, "sections")):
        s = f"s{i}"
        section: dict[str, Any] = {"key": _s(form, f"{s}_key"), "title": _text(form, f"{s}_title")}
        if (description := _opt_text(form, f"{s}_description")) is not None:
            section["description"] = description
        if form.get(f"{s}_repeatable") == "on":
            section["repeatable"] = True
        if (label := _opt_text(form, f"{s}_repeat_label")) is not None:
            section["repeat_label"] = label
        section["items"] = [_item(form, f"{s}_i{j}") for j in range(_count(form, f"{s}_items"))]
        sections.append(section)
    content["sections"] = sections
    return content


# --- editing steps ----------------------------------------------------------------------

_STEP = re.compile(r"^(?P<op>add_item|add_section|up|down|remove|add_ref|add_opt):(?P<at>[\w]*)$")
_AT = re.compile(r"^s(?P<s>\d+)(?:_i(?P<i>\d+))?$")


def _new_item(section: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    taken = {i.get("key") for s in content["sections"] for i in s.get("items", [])}
    base = f"{section.get('key') or 'item'}_new"
    n = 1
    while f"{base}_{n}" in taken:
        n += 1
    return {
        "key": f"{base}_{n}",
        "prompt": {"en": "", "zh": ""},
        "answer": "yes_no_na",
        "required": True,
        "severity_hint": "other",
        "references": [],
    }


def apply_step(content: dict[str, Any], step: str) -> dict[str, Any] | None:
    """The content after one editing step (``add_item:s0``, ``up:s0_i3``, ``remove:s1``,
    ``add_ref:s0_i2``, ...), or None if the step names nothing in it."""
    m = _STEP.match(step)
    if not m:
        return None
    out = copy.deepcopy(content)
    sections: list[dict[str, Any]] = out["sections"]
    if m["op"] == "add_section":
        n = len(sections) + 1
        taken = {s.get("key") for s in sections}
        while f"section_{n}" in taken:
            n += 1
        section: dict[str, Any] = {"key": f"section_{n}", "title": {"en": "", "zh": ""}}
        section["items"] = [_new_item(section, out)]
        sections.append(section)
        return out
    at = _AT.match(m["at"])
    if not at or int(at["s"]) >= len(sections):
        return None
    si = int(at["s"])
    items: list[dict[str, Any]] = sections[si]["items"]
    if at["i"] is None:
        seq: list[dict[str, Any]] = sections
        pos = si
        if m["op"] == "add_item":
            items.append(_new_item(sections[si], out))
            return out
    else:
        if int(at["i"]) >= len(items):
            return None
        seq, pos = items, int(at["i"])
        item = items[pos]
        if m["op"] == "add_ref":
            item.setdefault("references", []).append({"document": "", "section": ""})
            return out
        if m["op"] == "add_opt":
            item.setdefault("options", []).append({"value": "", "label": {"en": "", "zh": ""}})
            return out
    if m["op"] == "remove":
        seq.pop(pos)
    elif m["op"] == "up" and pos > 0:
        seq[pos - 1], seq[pos] = seq[pos], seq[pos - 1]
    elif m["op"] == "down" and pos < len(seq) - 1:
        seq[pos + 1], seq[pos] = seq[pos], seq[pos + 1]
    elif m["op"] not in ("up", "down"):
        return None
    return out


def step_focus(step: str, content: dict[str, Any]) -> str | None:
    """The item a step was about, where it is once the step is done (``s0_i3``), to be
    shown open; None for a removal or a section."""
    m = _STEP.match(step)
    at = _AT.match(m["at"]) if m else None
    if not m or not at or int(at["s"]) >= len(content["sections"]):
        return None
    si = int(at["s"])
    count = len(content["sections"][si]["items"])
    if m["op"] == "add_item" and at["i"] is None:
        return f"s{si}_i{count - 1}"
    if at["i"] is None or m["op"] == "remove":
        return None
    i = int(at["i"])
    if m["op"] == "up":
        i = max(i - 1, 0)
    elif m["op"] == "down":
        i = min(i + 1, count - 1)
    return f"s{si}_i{i}"


# --- a problem's path -> the form field ----------------------------------------------

_PART = re.compile(r"^(?P<name>\w+)(?:\[(?P<sel>[^\]]*)\])?$")


def _index(seq: list[Any], sel: str, field: str, duplicate: bool) -> int | None:
    """The position ``sel`` names in ``seq``: by key (or option value), else by number.
    A duplicate key is reported at its second use."""
    hits = [n for n, x in enumerate(seq) if isinstance(x, dict) and x.get(field) == sel]
    if hits:
        return hits[1] if duplicate and len(hits) > 1 else hits[0]
    if sel.isdigit() and int(sel) < len(seq):
        return int(sel)
    return None


def _split(path: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in path:
        if ch == "." and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        cur += ch
    parts.append(cur)
    return [p for p in parts if p]


def field_of(path: str | None, content: dict[str, Any], message: str = "") -> str:
    """The form field a problem at ``path`` belongs to (``content.sections[cb].items[x].min``
    -> ``s0_i3_min``); the nearest enclosing field when the path goes deeper than the
    form, ``"content"`` when it names nothing in it."""
    if not path:
        return "content"
    parts = _split(path.removeprefix("content").lstrip("."))
    duplicate = message.startswith("duplicate")
    name = ""
    node: Any = content
    for n, part in enumerate(parts):
        m = _PART.match(part)
        if not m:
            break
        field, sel = m["name"], m["sel"]
        last = n == len(parts) - 1
        if field in ("sections", "items", "references", "options") and sel is not None:
            seq = node.get(field) if isinstance(node, dict) else None
            if not isinstance(seq, list):
                break
            key = "value" if field == "options" else "key"
            pos = _index(seq, sel, key, duplicate and last)
            if pos is None:
                break
            prefix = {"sections": "s", "items": "i", "references": "r", "options": "o"}[field]
            name = f"{name}_{prefix}{pos}" if name else f"{prefix}{pos}"
            node = seq[pos]
            if field == "references" and last:
                return f"{name}_document"
            if field == "options" and last:
                return f"{name}_value"
            continue
        if field in ("items", "references", "options", "sections") and sel is None:
            if field == "sections":
                return "sections"
            suffix = {"items": "items", "references": "refs", "options": "opts"}[field]
            return f"{name}_{suffix}" if name else "content"
        if field in ("title", "prompt", "guidance", "description", "repeat_label", "label"):
            lang = parts[n + 1] if n + 1 < len(parts) and parts[n + 1] in _LANGS else "en"
            return f"{name}_{field}_{lang}" if name else f"{field}_{lang}"
        if field == "evidence":
            sub = parts[n + 1] if n + 1 < len(parts) else "require"
            return f"{name}_evidence_{'when' if sub == 'when_answer_in' else 'require'}"
        if field == "show_if":
            sub = parts[n + 1] if n + 1 < len(parts) else "item"
            return f"{name}_show_if_{'answers' if sub == 'answer_in' else 'item'}"
        if field in ("key", "answer", "unit", "min", "max", "required", "severity_hint"):
            return f"{name}_{field}" if name else "content"
        if field in ("repeatable", "document", "section", "value"):
            return f"{name}_{field}" if name else "content"
        break
    return name or "content"
