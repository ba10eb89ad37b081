"""Checklist templates as data: the schema, a strict loader, the bundled library.

This package depends on msgspec and PyYAML only; it never imports a web framework.
"""

from pathlib import Path

from checklists.loader import (
    ChecklistError,
    check_complete,
    decode_template,
    load_file,
    load_library,
)
from checklists.schema import StageType, Template

__all__ = [
    "LIBRARY_DIR",
    "ChecklistError",
    "StageType",
    "Template",
    "check_complete",
    "decode_template",
    "load_file",
    "load_library",
]

LIBRARY_DIR = Path(__file__).parent / "library"
"""The bundled library: one published template per stage type."""
