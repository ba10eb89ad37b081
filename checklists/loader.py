"""Strict loading of checklist template files and dicts.

Everything that is wrong with a template is reported as a :class:`ChecklistError` whose
``path`` names the place at fault by *key* (file, section, item, field), e.g.
``cell_bank.yaml: sections[storage].items[cb_ln2_alarm].min``, so an author can go
straight to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import yaml

from checklists.schema import DOCUMENTS, SCHEMA_VERSION, Item, Section, Template, Text

__all__ = [
    "ChecklistError",
    "check_complete",
    "decode_template",
    "dump_template",
    "load_file",
    "load_library",
    "parse_yaml",
    "template_from_obj",
]


class ChecklistError(ValueError):
    """A template is not valid. ``path`` names the place at fault, ``message`` says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate mapping keys (PyYAML keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key in result:
            mark = key_node.start_mark
            raise ChecklistError(
                f"line {mark.line + 1}", f"duplicate key {key!r} in the same mapping"
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)
# YAML 1.1 would read `no` as False and `2024-01-01` as a date; templates want strings.
_StrictLoader.yaml_implicit_resolvers = {
    ch: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


def _joined_surrogates(value: Any) -> Any:
    """YAML reads JSON's escape of a character past U+FFFF (``"\\ud83d\\ude00"``) as two
    lone surrogates, which no text encoding takes: join each pair into the character it
    escapes. A lone surrogate is refused (``UnicodeDecodeError``)."""
    if isinstance(value, str):
        if not any("\ud800" <= c <= "\udfff" for c in value):
            return value
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    if isinstance(value, dict):
        return {_joined_surrogates(k): _joined_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_joined_surrogates(v) for v in value]
    return value


def parse_yaml(text: str | bytes, source: str = "") -> Any:
    """Parse YAML (or JSON) text, refusing duplicate keys; errors name ``source``."""
    try:
        loaded = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        return _joined_surrogates(loaded)
    except UnicodeDecodeError:
        raise ChecklistError(source, "not valid text: a lone surrogate escape") from None
    except ChecklistError as exc:
        raise ChecklistError(_join(source, exc.path), exc.message) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise ChecklistError(_join(source, where), f"not valid YAML: {exc}") from None


def _join(*parts: str) -> str:
    return ": ".join(p for p in parts if p)


_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_INDEX = re.compile(r"^(?P<field>\w+)\[(?P<index>\d+)\]")


def _keyed_path(obj: Any, raw: str) -> str:
    """Turn msgspec's ``$.sections[1].items[0].min`` into a path that names keys."""
    out: list[str] = []
    node = obj
    for part in [p for p in raw.split(".") if p]:
        m = _INDEX.match(part)
        if m and isinstance(node, dict):
            field, index = m["field"], int(m["index"])
            seq = node.get(field)
            node = seq[index] if isinstance(seq, list) and index < len(seq) else None
            key = node.get("key") if isinstance(node, dict) else None
            out.append(f"{field}[{key}]" if isinstance(key, str) else part)
        else:
            node = node.get(part) if isinstance(node, dict) else None
            out.append(part)
    return ".".join(out)


def template_from_obj(obj: Any, source: str = "") -> Template:
    """Build a :class:`Template` from parsed data, checking types and every rule."""
    try:
        template = msgspec.convert(obj, Template, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _MSGSPEC_PATH.search(text)
        path = _keyed_path(obj, m["path"]) if m else ""
        message = text[: m.start()] if m else text
        raise ChecklistError(_join(source, path), message) from None
    _check_rules(template, source)
    return template


def decode_template(data: str | bytes, source: str = "") -> Template:
    """Parse YAML or JSON text into a checked :class:`Template`."""
    return template_from_obj(parse_yaml(data, source), source)


def load_file(path: str | Path) -> Template:
    """Load and check one template file."""
    p = Path(path)
    return decode_template(p.read_bytes(), p.name)


def load_library(directory: str | Path) -> list[Template]:
    """Load every ``*.yaml`` template under ``directory``, each checked, sorted by key.

    Two files with the same template key or stage type are refused.
    """
    templates: list[Template] = []
    seen: dict[str, str] = {}
    for p in sorted(Path(directory).glob("*.yaml")):
        t = load_file(p)
        for ident in (f"key {t.key}", f"stage type {t.stage_type.value}"):
            if ident in seen:
                raise ChecklistError(p.name, f"{ident} is already used by {seen[ident]}")
            seen[ident] = p.name
        templates.append(t)
    return templates


class _Dumper(yaml.SafeDumper):
    """Double-quotes strings holding characters YAML would otherwise fold (NEL, line and
    paragraph separators), so they survive a round trip."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if any(ch in value for ch in "\x85\u2028\u2029"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def dump_template(template: Template) -> str:
    """Render a template as YAML that :func:`decode_template` reads back unchanged."""
    obj = msgspec.to_builtins(template)
    return yaml.dump(obj, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)


def _check_rules(t: Template, source: str) -> None:
    if t.schema_version != SCHEMA_VERSION:
        raise ChecklistError(
            _join(source, "schema_version"),
            f"unsupported schema version {t.schema_version}; this server reads {SCHEMA_VERSION}",
        )
    _check_text(t.title, _join(source, "title"))
    if not t.sections:
        raise ChecklistError(_join(source, "sections"), "a template needs at least one section")
    section_keys: set[str] = set()
    item_keys: dict[str, Item] = {}
    for section in t.sections:
        where = _join(source, f"sections[{section.key}]")
        if section.key in section_keys:
            raise ChecklistError(where, f"duplicate section key {section.key!r}")
        section_keys.add(section.key)
        _check_section(section, where)
        for item in section.items:
            iwhere = f"{where}.items[{item.key}]"
            if item.key in item_keys:
                raise ChecklistError(iwhere, f"duplicate item key {item.key!r}")
            _check_item(item, iwhere, item_keys)
            item_keys[item.key] = item


def _check_text(text: Text, where: str) -> None:
    if not text.en.strip() and not text.zh.strip():
        raise ChecklistError(where, "text needs at least one of en or zh")


def _check_section(section: Section, where: str) -> None:
    _check_text(section.title, f"{where}.title")
    if not section.items:
        raise ChecklistError(f"{where}.items", "a section needs at least one item")
    if section.repeat_label is not None and not section.repeatable:
        raise ChecklistError(f"{where}.repeat_label", "repeat_label needs repeatable: true")
    if section.repeatable and section.repeat_label is None:
        raise ChecklistError(f"{where}.repeat_label", "a repeatable section needs repeat_label")


def answer_values(item: Item) -> set[str] | None:
    """The answers an item can take, where they are a closed set."""
    if item.answer == "yes_no_na":
        return {"yes", "no", "na"}
    if item.answer in ("single_choice", "multi_choice"):
        return {o.value for o in item.options or ()}
    return None


def _check_item(item: Item, where: str, earlier: dict[str, Item]) -> None:
    _check_text(item.prompt, f"{where}.prompt")
    if not item.references:
        raise ChecklistError(f"{where}.references", "every item cites at least one source")
    for n, ref in enumerate(item.references):
        if ref.document not in DOCUMENTS:
            raise ChecklistError(
                f"{where}.references[{n}].document",
                f"unknown document {ref.document!r}; known: {', '.join(sorted(DOCUMENTS))}",
            )
        if not ref.section.strip():
            raise ChecklistError(f"{where}.references[{n}].section", "section must not be empty")
    is_choice = item.answer in ("single_choice", "multi_choice")
    if is_choice:
        if not item.options or len(item.options) < 2:
            raise ChecklistError(f"{where}.options", f"a {item.answer} item needs >= 2 options")
        values = [o.value for o in item.options]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ChecklistError(f"{where}.options", f"duplicate option values {dupes}")
    elif item.options is not None:
        raise ChecklistError(f"{where}.options", f"options are not allowed on a {item.answer} item")
    if item.answer != "number":
        for field in ("unit", "min", "max"):
            if getattr(item, field) is not None:
                raise ChecklistError(
                    f"{where}.{field}",
                    f"{field} is only allowed on number items, not {item.answer}",
                )
    elif item.min is not None and item.max is not None and item.min > item.max:
        raise ChecklistError(f"{where}.min", f"min {item.min} is greater than max {item.max}")
    allowed = answer_values(item)
    if item.evidence is not None and allowed is not None:
        bad = [a for a in item.evidence.when_answer_in if a not in allowed]
        if bad:
            raise ChecklistError(
                f"{where}.evidence.when_answer_in", f"{bad} are not answers of this item"
            )
    if item.show_if is not None:
        target = earlier.get(item.show_if.item)
        if target is None:
            raise ChecklistError(
                f"{where}.show_if.item",
                f"show_if points at {item.show_if.item!r}, which is not an earlier item",
            )
        tallowed = answer_values(target)
        if tallowed is not None:
            bad = [a for a in item.show_if.answer_in if a not in tallowed]
            if bad:
                raise ChecklistError(
                    f"{where}.show_if.answer_in",
                    f"{bad} are not answers of item {target.key!r}",
                )


def _texts(t: Template) -> Iterable[tuple[str, Text]]:
    yield "title", t.title
    if t.description:
        yield "description", t.description
    for s in t.sections:
        sw = f"sections[{s.key}]"
        yield f"{sw}.title", s.title
        if s.description:
            yield f"{sw}.description", s.description
        if s.repeat_label:
            yield f"{sw}.repeat_label", s.repeat_label
        for i in s.items:
            iw = f"{sw}.items[{i.key}]"
            yield f"{iw}.prompt", i.prompt
            if i.guidance:
                yield f"{iw}.guidance", i.guidance
            for o in i.options or ():
                yield f"{iw}.options[{o.value}].label", o.label


def check_complete(t: Template, source: str = "") -> None:
    """Refuse a template that lacks English or Chinese for any text (needed to publish)."""
    for where, text in _texts(t):
        for lang in ("en", "zh"):
            if not getattr(text, lang).strip():
                raise ChecklistError(_join(source, f"{where}.{lang}"), f"missing {lang} text")
