"""The checklist sources: every cited document is known and every known one cited, no
unchecked article numbers, the generated source list in docs/ is current."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checklists import LIBRARY_DIR, load_library
from checklists import sources_doc as sd
from checklists.schema import DOCUMENTS, Template
from checklists.sources import ARTICLE_NUMBER, CHECKED_NUMBERED_SECTIONS, SOURCES

PILOT = "NMPA Pilot Work Plan for Segmented Production of Biologics (2024)"
LOT_RELEASE = "SAMR Order No. 33: Lot Release of Biological Products (2020)"


@pytest.fixture(scope="module")
def library() -> list[Template]:
    return load_library(LIBRARY_DIR)


def _refs(library: list[Template]) -> list[tuple[str, str, str, str]]:
    """(template, item, document, section) for every reference of the library."""
    return [
        (t.key, i.key, r.document, r.section)
        for t in library
        for _, i in t.items()
        for r in i.references
    ]


def test_every_cited_document_is_known_and_every_known_one_is_cited(library) -> None:
    cited = {doc for _, _, doc, _ in _refs(library)}
    assert cited <= set(SOURCES), f"unknown documents: {cited - set(SOURCES)}"
    assert set(SOURCES) <= cited, f"known sources no item cites: {set(SOURCES) - cited}"
    # The loader's list is the registry's, with the English titles.
    assert {key: s.en for key, s in SOURCES.items()} == DOCUMENTS


def test_no_unchecked_article_number_in_any_reference(library) -> None:
    numbered = {(doc, sec) for _, _, doc, sec in _refs(library) if ARTICLE_NUMBER.search(sec)}
    unchecked = sorted(numbered - CHECKED_NUMBERED_SECTIONS)
    assert not unchecked, f"article numbers not checked against the text: {unchecked}"
    # An allow-list entry nothing cites any more is stale: drop it with the citation.
    assert numbered == CHECKED_NUMBERED_SECTIONS


@pytest.mark.parametrize(
    "section",
    [
        "第十二条",
        "第 5 条 持有人",
        "第一百八十四条",
        "Article 12",
        "Articles 3-5",
        "Art. 7 release",
        "§ 11.10(e) Audit trails",
        "Clause 4 of the agreement",
        "see article 9",
    ],
)
def test_article_numbers_are_recognised(section: str) -> None:
    assert ARTICLE_NUMBER.search(section)


@pytest.mark.parametrize(
    "section",
    [
        "Chapter 10, Section 2 Release of materials and products (物料和产品放行)",
        "6.37-6.41 Technical transfer of testing methods",
        "二、纳入试点工作的有关要求（二）试点企业 (requirements for pilot enterprises)",
        "Chapter 9 Processing of inspection results (检查结果的处理)",
        "18.2 Cell Bank Maintenance and Record Keeping",
        "Articles of association of the contract manufacturer",
        "EU GMP Part II, Chapter 16",
    ],
)
def test_chapter_and_section_titles_are_not_article_numbers(section: str) -> None:
    assert not ARTICLE_NUMBER.search(section)


CHINESE_NUMBER = st.integers(1, 999).map(
    lambda n: "".join("零一二三四五六七八九"[int(d)] for d in str(n))
)


@given(
    number=st.one_of(st.integers(1, 999).map(str), CHINESE_NUMBER),
    before=st.text(alphabet="abc 持有人。,", max_size=10),
    after=st.text(alphabet="abc 持有人。,", max_size=10),
    form=st.sampled_from(["第{}条", "第 {} 条", "Article {}", "Art. {}", "§ {}"]),
)
def test_any_article_number_is_caught_wherever_it_stands(
    number: str, before: str, after: str, form: str
) -> None:
    if not number.isdigit() and not form.startswith("第"):
        number = "12"  # Chinese numerals only after 第
    assert ARTICLE_NUMBER.search(f"{before} {form.format(number)} {after}")


def test_titles_fixed_and_chinese_titles_given() -> None:
    assert SOURCES["WHO TRS 1033 Annex 4"].en.endswith("Guideline on data integrity")
    assert "ALCOA" not in SOURCES["WHO TRS 1033 Annex 4"].en
    assert SOURCES[PILOT].zh == "生物制品分段生产试点工作方案"
    assert SOURCES[PILOT].year == 2024
    assert SOURCES["NMPA Drug Inspection Measures (Trial)"].zh == "药品检查管理办法（试行）"
    production = SOURCES["SAMR Order No. 28: Drug Production Measures (2020)"]
    assert production.zh == "药品生产监督管理办法"
    assert SOURCES[LOT_RELEASE].zh == "生物制品批签发管理办法"
    for key, source in SOURCES.items():
        assert source.checked.strip(), key


def test_items_cite_the_documents_that_are_their_basis(library) -> None:
    by_item: dict[str, set[str]] = {}
    for _, item, doc, _ in _refs(library):
        by_item.setdefault(item, set()).add(doc)
    expected = {
        "mah_single_qms": {PILOT, "SAMR Order No. 28: Drug Production Measures (2020)"},
        "mah_site_track_record": {PILOT},
        "qa_stage_release": {PILOT, "EU GMP Annex 16"},
        "qa_lot_release_certificate": {LOT_RELEASE},
        "cb_characterisation": {"ICH Q5B", "ICH Q5D"},
        "qc_stability_holds": {"ICH Q5C"},
        "vc_change_reassessment": {"ICH Q5E"},
        "cc_lane_qualified": {"EU GMP Annex 15"},
        "mah_previous_inspection_capa": {"NMPA Drug Inspection Measures (Trial)"},
        "qc_method_transfer": {"EU GMP Chapter 6", "WHO TRS 1044 Annex 4"},
        "qc_method_transfer_type": {"EU GMP Chapter 6", "WHO TRS 1044 Annex 4"},
    }
    missing = {k: v - by_item[k] for k, v in expected.items() if v - by_item[k]}
    assert not missing
    # Method transfer is not what ICH Q2(R2)'s precision section is about.
    for item in ("qc_method_transfer", "qc_method_transfer_type"):
        assert "ICH Q2(R2)" not in by_item[item]


def test_the_source_list_in_docs_is_up_to_date() -> None:
    # Fails when checklists/sources.py or a library reference changed without
    # `python -m checklists.sources_doc`.
    assert Path(__file__).parents[2] / "docs" / "checklist-sources.md" == sd.DOCS_PATH
    assert sd.DOCS_PATH.read_text(encoding="utf-8") == sd.generate_doc()


def test_the_source_list_names_every_source_and_its_uses(library) -> None:
    text = sd.generate_doc()
    for key, source in SOURCES.items():
        assert f"| `{key}` | {source.en} |" in text
        if source.zh:
            assert source.zh in text
    assert "`qa_release`: `qa_lot_release_certificate`" in text


def test_sources_doc_main_writes_and_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "checklist-sources.md"
    monkeypatch.setattr(sd, "DOCS_PATH", target)
    assert sd.main(["--check"]) == 1  # missing
    assert "stale" in capsys.readouterr().err
    assert sd.main([]) == 0
    assert target.read_text(encoding="utf-8") == sd.generate_doc()
    assert sd.main(["--check"]) == 0
    target.write_text(sd.generate_doc().replace("ICH Q5B", "ICH Q5X", 1), encoding="utf-8")
    assert sd.main(["--check"]) == 1
