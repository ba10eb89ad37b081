"""The pure parts of the exports: CSV cells and finding counts."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st

from sync.exports import csv_cell, to_csv
from sync.reports import Counts, count_findings


def test_formula_cells_are_defused_and_numbers_kept():
    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell("+86 电话") == "'+86 电话"
    assert csv_cell("-2+3") == "'-2+3"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("\t=1") == "'\t=1"
    assert csv_cell("\r=1") == "'\r=1"
    assert csv_cell("a = b") == "a = b"
    assert csv_cell(-150) == -150 and csv_cell(0.5) == 0.5
    assert csv_cell(None) == "" and csv_cell(True) == "true"
    assert csv_cell(["=a", "b"]) == "'=a; b"  # the joined text is checked as a whole
    assert csv_cell(["b", "=a"]) == "b; =a"  # harmless: does not start a formula
    assert csv_cell({"document": "ICH Q7"}) == '{"document":"ICH Q7"}'


@given(st.text())
def test_any_text_round_trips_through_csv_and_never_starts_a_formula(text):
    doc = to_csv(["x"], [{"x": text}])
    assert doc.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(doc.removeprefix("\ufeff"), newline="")))
    assert rows[0] == ["x"]
    cell = rows[1][0]
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        assert cell == "'" + text
    else:
        assert cell == text


def test_counts_leave_out_withdrawn_and_merged():
    findings = [
        {"classification": "critical", "status": "accepted"},
        {"classification": "major"},
        {"classification": "major", "status": "merged", "merged_into": "f1"},
        {"classification": "other", "status": "withdrawn"},
        {"classification": "severe"},  # not a classification: counted as unclassified
        {},
    ]
    assert count_findings(findings) == Counts(
        critical=1, major=1, other=0, unclassified=2, total=4, withdrawn_or_merged=2
    )
