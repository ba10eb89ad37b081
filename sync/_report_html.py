"""The pieces every filed document is built from: escaping, tables, times, the
classification badge, the evidence thumbnails and their SHA-256 notes, the page frame
and its print CSS. Standard library only; every value from data is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any, Literal

import msgspec

from sync.rectification import ZONE
from sync.report_labels import Labels

__all__ = [
    "CSS",
    "EvidenceNotes",
    "EvidenceView",
    "badge",
    "e",
    "facts",
    "frame",
    "table",
    "when",
]


class EvidenceView(msgspec.Struct, frozen=True, kw_only=True):
    """One evidence file as a document shows it: whether the server holds it, and a
    thumbnail (a ``data:`` URI made by the server) when it is a picture it holds."""

    sha256: str
    state: Literal["stored", "missing", "lost"]
    media_type: str = ""
    thumbnail: str | None = None


CSS = """
:root { --ink: #1a1a1a; --muted: #5b5b5b; --rule: #b8b8b8; --crit: #8b0000;
  --major: #8a4b00; --other: #2f4f4f; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Noto Sans", "PingFang SC", "Microsoft YaHei",
  Arial, sans-serif; color: var(--ink); font-size: 10.5pt; line-height: 1.5;
  margin: 0 auto; max-width: 62rem; padding: 1.5rem; }
h1 { font-size: 18pt; margin: 0 0 .3rem; text-align: center; letter-spacing: .05em; }
.subtitle { text-align: center; color: var(--muted); margin: 0 0 1rem; }
h2 { font-size: 13pt; border-bottom: 2px solid var(--ink); padding-bottom: .15rem;
  margin: 1.4rem 0 .6rem; }
h3 { font-size: 11.5pt; margin: 1rem 0 .4rem; }
.muted { color: var(--muted); }
.nowrap { white-space: nowrap; }
.ref { font-family: "Noto Sans Mono", ui-monospace, Menlo, Consolas, monospace;
  font-size: 8.5pt; word-break: break-all; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0 .8rem; }
table.fixed { table-layout: fixed; }
table.fixed td { overflow-wrap: anywhere; }
table.fixed th { overflow-wrap: break-word; hyphens: auto; }
th, td { border: 1px solid var(--rule); padding: .25rem .4rem; text-align: left;
  vertical-align: top; }
th { background: #eee; font-weight: 600; }
table.facts th { width: 12rem; }
td.num, th.num { text-align: right; white-space: nowrap; }
.badge { display: inline-block; border: 1px solid currentColor; border-radius: 3px;
  padding: 0 .3rem; font-size: 8.5pt; font-weight: 600; }
.critical { color: var(--crit); } .major { color: var(--major); }
.other { color: var(--other); } .unclassified { color: var(--muted); }
.overdue, .changed { color: var(--crit); font-weight: 600; }
.conclusion { font-size: 12pt; }
figure.ev { display: inline-block; margin: .2rem .3rem .2rem 0; vertical-align: top;
  text-align: center; font-size: 8pt; color: var(--muted); max-width: 100%; }
figure.ev img { display: block; max-width: 100%; max-height: 30mm; border: 1px solid
  var(--rule); }
.ev-missing { color: var(--crit); font-size: 8.5pt; }
.fn { display: none; }
ol.notes { font-size: 8pt; color: var(--muted); padding-left: 1.6rem; }
ol.notes li { word-break: break-all; }
.doc { break-before: page; }
.doc.first { break-before: auto; }
@media screen { .doc:not(.first) { border-top: 3px double var(--rule); margin-top: 2.5rem;
  padding-top: 1rem; } }
.toc a { color: inherit; text-decoration: none; }
.toc li { margin: .15rem 0; }
footer { margin-top: 1.5rem; border-top: 1px solid var(--rule); padding-top: .4rem;
  font-size: 8.5pt; color: var(--muted); }
@page { size: A4; margin: 16mm 14mm 18mm;
  @footnote { border-top: 1px solid #b8b8b8; padding-top: 1mm; }
  @bottom-center { content: counter(page) " / " counter(pages); font-size: 8pt;
    color: #5b5b5b; } }
@media print {
  body { max-width: none; padding: 0; font-size: 9.5pt; }
  a { color: inherit; text-decoration: none; }
  h2, h3 { break-after: avoid; }
  tr, figure.ev { break-inside: avoid; }
  thead { display: table-header-group; }
  .toc a::after { content: leader('.') target-counter(attr(href), page); }
  .fn { display: block; float: footnote; font-size: 7pt; color: #5b5b5b;
    text-align: left; }
  .fn .ref { font-size: 7pt; }
  .fn::footnote-call { content: none; }
  .fn::footnote-marker { content: none; }
  .ev-notes { display: none; }
}
"""


def e(value: Any) -> str:
    """Escape anything for HTML text and attribute values; None is empty."""
    if value is None:
        return ""
    return escape(str(value), quote=True)


def when(value: Any) -> str:
    """A stored time (ISO 8601 with an offset) to the minute in China Standard Time,
    where the offices are; a date, a time without zone or other text as written."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return e(value)
    if moment.tzinfo is None:
        return e(value if not isinstance(value, datetime) else value.isoformat())
    return e(moment.astimezone(ZONE).strftime("%Y-%m-%d %H:%M (UTC+8)"))


def facts(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table of label -> value (values already HTML)."""
    body = "".join(f"<tr><th>{e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def table(
    head: Iterable[str],
    rows: Iterable[Iterable[str]],
    num: frozenset[int] = frozenset(),
    widths: Sequence[int] = (),
) -> str:
    """A table with a repeated header; ``head`` is text, cells are HTML. ``widths``
    (percent per column) fix the layout, so long hashes and narrow columns wrap."""
    th = "".join(
        f'<th class="num">{e(h)}</th>' if n in num else f"<th>{e(h)}</th>"
        for n, h in enumerate(head)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if n in num else f"<td>{c}</td>" for n, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    if widths:
        cols = "".join(f'<col style="width:{w}%">' for w in widths)
        return (
            f'<table class="fixed"><colgroup>{cols}</colgroup><thead><tr>{th}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def badge(t: Labels, cls: str | None) -> str:
    """Both classification labels: the NMPA's and PIC/S's, in the document's language."""
    if cls not in ("critical", "major", "other"):
        return f'<span class="badge unclassified">{e(t("cls_none"))}</span>'
    return (
        f'<span class="badge {cls}">NMPA {e(t(f"cls_{cls}"))} · PIC/S {e(t(f"pics_{cls}"))}</span>'
    )


class EvidenceNotes:
    """Evidence as thumbnails, each numbered; the numbers' SHA-256 are listed in the
    document's notes (:meth:`notes`). A file the server does not hold is said plainly
    where it is named."""

    def __init__(self, t: Labels, evidence: dict[str, EvidenceView]) -> None:
        self.t = t
        self.evidence = evidence
        self.numbers: dict[str, int] = {}

    def figures(self, hashes: Iterable[Any]) -> str:
        out = []
        for h in hashes:
            if not isinstance(h, str):
                continue
            n = self.numbers.setdefault(h, len(self.numbers) + 1)
            view = self.evidence.get(h) or EvidenceView(sha256=h, state="missing")
            # printed: the SHA-256 in a footnote at the foot of the page
            note = f'<span class="fn">[{n}] SHA-256 <span class="ref">{e(h)}</span></span>'
            if view.state != "stored":
                text = self.t("ev_missing" if view.state == "missing" else "ev_lost")
                out.append(f'<div class="ev-missing">[{n}] {e(text)}{note}</div>')
            elif view.thumbnail:
                out.append(
                    f'<figure class="ev"><img src="{e(view.thumbnail)}" alt="[{n}]">'
                    f"<figcaption>[{n}]{note}</figcaption></figure>"
                )
            else:
                text = self.t("ev_no_preview", type=view.media_type or "?")
                out.append(
                    f'<figure class="ev"><figcaption>[{n}] {e(text)}{note}</figcaption></figure>'
                )
        return "".join(out) or f'<span class="muted">{e(self.t("ev_none"))}</span>'

    def notes(self) -> str:
        """The numbers' SHA-256 at the document's end (on screen; printed, each is a
        footnote on the page that shows the file)."""
        if not self.numbers:
            return ""
        items = "".join(
            f'<li value="{n}"><span class="ref">{e(h)}</span></li>'
            for h, n in sorted(self.numbers.items(), key=lambda hn: hn[1])
        )
        return (
            f'<div class="ev-notes"><h3>{e(self.t("ev_footnote"))}</h3>'
            f'<ol class="notes">{items}</ol></div>'
        )


def frame(t: Labels, title: str, body: str, footer: str) -> str:
    """The complete HTML document: the language, the inline CSS, no external asset
    (thumbnails are ``data:`` URIs)."""
    lang = "zh-CN" if t.lang == "zh" else "en"
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}<footer>{footer}</footer></body></html>\n"
    )
