"""The JSON Schema of a checklist template file, generated from :mod:`checklists.schema`.

``checklists/schema.json`` is committed so that editors (and YAML language servers) can
check template files as they are written. Regenerate it after changing the schema::

    python -m checklists.jsonschema           # write checklists/schema.json
    python -m checklists.jsonschema --check   # exit 1 if the file is stale

The schema covers types, required fields and key patterns only; the rules that a type
cannot express (unique keys, ``show_if`` targets, ...) are checked by
:mod:`checklists.loader`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from checklists.schema import Template

__all__ = ["SCHEMA_PATH", "generate", "main"]

SCHEMA_PATH = Path(__file__).parent / "schema.json"
"""Where the generated schema is kept, next to this module."""


def generate() -> str:
    """The JSON Schema of :class:`~checklists.schema.Template`, pretty-printed with
    sorted keys and a trailing newline (stable output, so a stale file shows in a diff)."""
    schema = _clean(msgspec.json.schema(Template))
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _clean(node: Any) -> Any:
    """Descriptions with docstring indentation removed: msgspec releases differ in how
    they dedent docstrings (0.23 keeps continuation indents), the file must not."""
    if isinstance(node, dict):
        return {
            k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else _clean(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m checklists.jsonschema",
        description="Write the JSON Schema of checklist template files to"
        f" {SCHEMA_PATH.name}, or check that it is up to date.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 if the file is missing or differs from the schema",
    )
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        try:
            current = SCHEMA_PATH.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            print(
                f"{SCHEMA_PATH} is stale; run `python -m checklists.jsonschema`",
                file=sys.stderr,
            )
            return 1
        print(f"{SCHEMA_PATH} is up to date")
        return 0
    SCHEMA_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
