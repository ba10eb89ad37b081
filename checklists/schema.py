"""The checklist template schema: what an authored template file may contain.

Templates are *authored* data, so decoding is the opposite of the sync wire: unknown
fields are refused (``forbid_unknown_fields``) and every struct is frozen. The
semantic rules that a type cannot express (unique keys, ``show_if`` targets, limits
only on numbers, ...) live in :mod:`checklists.loader`, which reports the path at
fault.

Item keys are stable across versions: the same key in version 3 and version 4 means
the same question, which is what lets answers and diffs be compared between versions.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec

from checklists.sources import SOURCES

__all__ = [
    "ANSWER_TYPES",
    "DOCUMENTS",
    "SCHEMA_VERSION",
    "AnswerType",
    "EvidenceRule",
    "Item",
    "Option",
    "Reference",
    "Section",
    "Severity",
    "ShowIf",
    "StageType",
    "Template",
    "Text",
]

SCHEMA_VERSION = 1

Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
"""A stable identifier: lower-case letters, digits and underscores."""


class StageType(enum.StrEnum):
    """A production stage of a segmented biologic chain (DESIGN.md section 1)."""

    MAH_OVERSIGHT = "mah_oversight"
    CELL_BANK = "cell_bank"
    UPSTREAM_CULTURE = "upstream_culture"
    HARVEST_PURIFICATION = "harvest_purification"
    VIRAL_CLEARANCE = "viral_clearance"
    CONJUGATION = "conjugation"
    FORMULATION_FILLING = "formulation_filling"
    LYOPHILISATION = "lyophilisation"
    INSPECTION_PACKAGING = "inspection_packaging"
    QC_LABORATORY = "qc_laboratory"
    COLD_CHAIN = "cold_chain"
    QA_RELEASE = "qa_release"
    DATA_INTEGRITY = "data_integrity"


AnswerType = Literal[
    "yes_no_na", "single_choice", "multi_choice", "number", "text", "date", "photo"
]
ANSWER_TYPES: tuple[str, ...] = AnswerType.__args__  # type: ignore[attr-defined]

Severity = Literal["critical", "major", "other"]

# The documents a reference may cite, by key, with their English titles: the registry with
# official (and Chinese) titles and what was checked is checklists/sources.py. A reference
# to anything else is refused: a typo or an invented source must fail loudly.
DOCUMENTS: dict[str, str] = {key: source.en for key, source in SOURCES.items()}


class Text(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A human-readable text in English and Simplified Chinese.

    Drafts may lack one language (the API then serves the other with a fallback
    marker); publishing requires both.
    """

    en: str = ""
    zh: str = ""


class Reference(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A citation at document + section level, e.g. EU GMP Annex 1 (2022), 9.32."""

    document: str
    section: str


class Option(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One choice of a single- or multiple-choice item."""

    value: Key
    label: Text


class ShowIf(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Show the item only when another item's answer is one of ``answer_in``."""

    item: Key
    answer_in: list[str]


class EvidenceRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When the answer is one of ``when_answer_in``, the response must carry evidence."""

    when_answer_in: list[str]
    require: Literal["note", "photo", "note_or_photo", "note_and_photo"]


class Item(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One question of a checklist."""

    key: Key
    prompt: Text
    answer: AnswerType
    references: list[Reference]
    guidance: Text | None = None
    required: bool = True
    severity_hint: Severity = "other"
    options: list[Option] | None = None
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    evidence: EvidenceRule | None = None
    show_if: ShowIf | None = None


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A group of items; a repeatable section is answered once per repeat (per line, per
    bioreactor), each repeat labelled with ``repeat_label`` and a number."""

    key: Key
    title: Text
    items: list[Item]
    description: Text | None = None
    repeatable: bool = False
    repeat_label: Text | None = None


class Template(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A checklist template for one production stage: the content of one version."""

    key: Key
    stage_type: StageType
    title: Text
    sections: list[Section]
    description: Text | None = None
    schema_version: int = SCHEMA_VERSION

    def items(self) -> list[tuple[Section, Item]]:
        """Every item with its section, in authored order."""
        return [(s, i) for s in self.sections for i in s.items]

    def item(self, key: str) -> Item | None:
        for section in self.sections:
            for item in section.items:
                if item.key == key:
                    return item
        return None
