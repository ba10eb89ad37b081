"""The source documents a checklist reference may cite: official titles, issuer, year, and
what was checked about each.

A reference names a document by its key here (``DOCUMENTS`` in :mod:`checklists.schema`
is derived from ``SOURCES``); anything else is refused by the loader, so a typo or an
invented source fails loudly. Titles are the official ones, in Chinese too where the
document is Chinese; ``checked`` says how the title (and the sections the library cites)
were verified, so a reader can tell a checked citation from one taken on trust.

Article numbers (第X条, Article N, §) are a promise that a reader can open the text at that
place. The library cites them only where they were checked against the text: those are
listed in ``CHECKED_NUMBERED_SECTIONS`` and ``tests/checklists/test_sources.py`` refuses
any other. ``python -m checklists.sources_doc`` writes ``docs/checklist-sources.md`` from
this module and the bundled library.
"""

from __future__ import annotations

import re

import msgspec

__all__ = [
    "ARTICLE_NUMBER",
    "CHECKED_NUMBERED_SECTIONS",
    "SOURCES",
    "Source",
]


class Source(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One citable document. ``zh`` is the official Chinese title where the document is
    Chinese (empty otherwise); ``checked`` records how title and cited sections were
    verified, or says plainly what was not."""

    en: str
    issuer: str
    year: int | None
    checked: str
    zh: str = ""


_NOT_RECHECKED = "Title carried over from the first library; not re-checked in issue 16."

SOURCES: dict[str, Source] = {
    "PIC/S PI 024": Source(
        "PIC/S Aide-memoire: inspection of biotechnology manufacturers",
        "PIC/S",
        None,
        _NOT_RECHECKED,
    ),
    "PIC/S PI 007": Source(
        "PIC/S Recommendation on the validation of aseptic processes",
        "PIC/S",
        None,
        _NOT_RECHECKED,
    ),
    "PIC/S PI 023": Source(
        "PIC/S Aide-memoire: inspection of pharmaceutical quality control laboratories",
        "PIC/S",
        None,
        _NOT_RECHECKED,
    ),
    "PIC/S PI 041": Source(
        "PIC/S Good practices for data management and integrity in regulated GMP/GDP environments",
        "PIC/S",
        None,
        _NOT_RECHECKED,
    ),
    "PIC/S PI 040": Source(
        "PIC/S Guidance on classification of GMP deficiencies",
        "PIC/S",
        None,
        _NOT_RECHECKED,
    ),
    "PIC/S PI 037": Source(
        "PIC/S A recommended model for risk-based inspection planning in the GMP environment",
        "PIC/S",
        2012,
        "Title and table of contents (PI 037-1, in force 1 January 2012) checked on the"
        " studylib.net copy of the document and pharmtech.com's article on it.",
    ),
    "EU GMP Annex 1 (2022)": Source(
        "EU GMP Annex 1: Manufacture of sterile medicinal products",
        "European Commission",
        None,
        _NOT_RECHECKED,
    ),
    "EU GMP Annex 2": Source(
        "EU GMP Annex 2: Manufacture of biological active substances and medicinal products"
        " for human use",
        "European Commission",
        2018,
        "Title checked on the European Commission's PDF (revision 2, in operation 26 June 2018).",
    ),
    "EU GMP Annex 11": Source(
        "EU GMP Annex 11: Computerised systems",
        "European Commission",
        None,
        _NOT_RECHECKED,
    ),
    "EU GMP Annex 15": Source(
        "EU GMP Annex 15: Qualification and validation",
        "European Commission",
        2015,
        "Title, date (in operation 1 October 2015) and the section titles cited (qualification"
        " stages for equipment, facilities, utilities and systems; re-qualification; process"
        " validation;"
        " verification of transportation; cleaning validation) checked on gmp-journal.com,"
        " pharmout.net and asfalia.es summaries of the 2015 text.",
    ),
    "EU GMP Annex 16": Source(
        "EU GMP Annex 16: Certification by a qualified person and batch release",
        "European Commission",
        None,
        _NOT_RECHECKED,
    ),
    "EU GMP Chapter 5": Source(
        "EU GMP Part I, Chapter 5: Production",
        "European Commission",
        None,
        _NOT_RECHECKED,
    ),
    "EU GMP Chapter 6": Source(
        "EU GMP Part I, Chapter 6: Quality control",
        "European Commission",
        2014,
        "The 2014 revision (in operation 1 October 2014) added the section 'Technical"
        " transfer of testing methods', paragraphs 6.37-6.41: checked on igmpiindia.org,"
        " nsf-dba.uk.com and gmp-compliance.org.",
    ),
    "ICH Q7": Source(
        "ICH Q7: Good manufacturing practice guide for active pharmaceutical ingredients",
        "ICH",
        None,
        _NOT_RECHECKED,
    ),
    "ICH Q10": Source(
        "ICH Q10: Pharmaceutical quality system",
        "ICH",
        None,
        _NOT_RECHECKED,
    ),
    "ICH Q5A(R2)": Source(
        "ICH Q5A(R2): Viral safety evaluation of biotechnology products derived from cell"
        " lines of human or animal origin",
        "ICH",
        None,
        _NOT_RECHECKED,
    ),
    "ICH Q5B": Source(
        "ICH Q5B: Quality of biotechnological products: analysis of the expression"
        " construct in cells used for production of r-DNA derived protein products",
        "ICH",
        1995,
        "Title, Step 4 date (30 November 1995) and the section 'Rationale for analysis of the"
        " expression construct' checked on the guideline text (slideshare.net and"
        " xinfuda-group.com copies) and the EMA page.",
    ),
    "ICH Q5C": Source(
        "ICH Q5C: Quality of biotechnological products: stability testing of"
        " biotechnological/biological products",
        "ICH",
        None,
        "Title checked (slideshare.net summary of the guideline); the library cites it by a"
        " general description, no section number.",
    ),
    "ICH Q5D": Source(
        "ICH Q5D: Derivation and characterisation of cell substrates used for production of"
        " biotechnological/biological products",
        "ICH",
        None,
        "Title and scope (derivation of cell lines; preparation and characterisation of"
        " master and working cell banks: identity, purity, stability) checked on the EMA"
        " page; cited by description, no section number.",
    ),
    "ICH Q5E": Source(
        "ICH Q5E: Comparability of biotechnological/biological products subject to changes"
        " in their manufacturing process",
        "ICH",
        2004,
        "Title and scope checked on the EMA page (CPMP/ICH/5721/03, effective 1 June 2005);"
        " cited by description, no section number.",
    ),
    "ICH Q9(R1)": Source(
        "ICH Q9(R1): Quality risk management",
        "ICH",
        2023,
        "Step 4 on 18 January 2023; the sections cited (formality in quality risk management,"
        " risk-based decision-making, subjectivity; integration of quality risk management"
        " into industry and regulatory operations) checked on the ICH Step 4 presentation"
        " and outsourcedpharma.com.",
    ),
    "ICH Q2(R2)": Source(
        "ICH Q2(R2): Validation of analytical procedures",
        "ICH",
        None,
        _NOT_RECHECKED,
    ),
    "China GMP (2010)": Source(
        "Good Manufacturing Practice for Drugs (2010 revision)",
        "Ministry of Health of the PRC",
        None,
        _NOT_RECHECKED,
        zh="药品生产质量管理规范（2010年修订）",
    ),
    "China GMP Appendix: Biological Products (2020)": Source(
        "China GMP appendix: biological products (2020 revision)",
        "NMPA",
        None,
        _NOT_RECHECKED,
    ),
    "China GMP Appendix: Sterile Products": Source(
        "China GMP appendix: sterile medicinal products",
        "SFDA",
        None,
        _NOT_RECHECKED,
    ),
    "NMPA Pilot Work Plan for Segmented Production of Biologics (2024)": Source(
        "Pilot Work Plan for Segmented Production of Biological Products",
        "NMPA",
        2024,
        "Title and date checked on the text of the NMPA notice of 21 October 2024"
        " (国家药监局关于印发生物制品分段生产试点工作方案的通知; medvalley.cn and"
        " rht360.com copies). Checked in the text: part 二 (纳入试点工作的有关要求), (二)"
        " 试点企业: the MAH and the contract manufacturers of the segments run one quality"
        " management system, and contract manufacturers need three or more years of"
        " commercial biologics production; (三) 试点品种 names the product types. Later parts"
        " (procedure, supervision) were not read: nothing is cited from them.",
        zh="生物制品分段生产试点工作方案",
    ),
    "NMPA Drug Inspection Measures (Trial)": Source(
        "Measures for the Administration of Drug Inspection (Trial)",
        "NMPA",
        2021,
        "Issued 2021 and revised 21 July 2023 (baipharm.chemlinked.com, gempexchina.com);"
        " the 2023 revision changed Chapter 3 'Inspection procedures' (检查程序) and Chapter 9"
        " 'Processing of inspection results' (检查结果的处理). Chapter titles checked there;"
        " no article is cited.",
        zh="药品检查管理办法（试行）",
    ),
    "SAMR Order No. 28: Drug Production Measures (2020)": Source(
        "Measures for the Supervision and Administration of Drug Production (SAMR Order No. 28)",
        "SAMR",
        2020,
        "Promulgated 22 January 2020, in force 1 July 2020: checked on the lexiscn.com and"
        " en.hillgene.com English texts. Chapter I 'General provisions' (总则) read there:"
        " the MAH establishes a drug quality assurance system and is responsible for the"
        " release of the drug to market. No article is cited.",
        zh="药品生产监督管理办法",
    ),
    "SAMR Order No. 33: Lot Release of Biological Products (2020)": Source(
        "Provisions for the Lot Release of Biological Products (SAMR Order No. 33)",
        "SAMR",
        2020,
        "Promulgated 11 December 2020, in force 1 March 2021, 48 articles in eight chapters:"
        " checked on english.nmpa.gov.cn and chinaservicesinfo.com. Chapter I 'General"
        " provisions' read there: vaccines, blood products and blood-screening IVDs are"
        " lot-released before marketing or import; a batch that has not passed may not be"
        " marketed. No article is cited.",
        zh="生物制品批签发管理办法",
    ),
    "WHO TRS 996 Annex 3": Source(
        "WHO good manufacturing practices for biological products (WHO Technical Report"
        " Series No. 996, Annex 3; also TRS No. 999, Annex 2)",
        "WHO",
        2016,
        "Checked on who.int (the TRS 996 Annex 3 and TRS 999 Annex 2 pages: the same text,"
        " replacing TRS 822 Annex 1) and the table of contents of the annex (seed lots and"
        " cell banks; premises and equipment; containment; validation).",
    ),
    "WHO TRS 1033 Annex 4": Source(
        "WHO TRS 1033 Annex 4: Guideline on data integrity",
        "WHO",
        2021,
        "Title and table of contents checked on the annex text (scribd copy) and"
        " gmp-compliance.org: it replaces TRS 996 Annex 5 'Guidance on good data and record"
        " management practices'. The first library called it 'Good data and record"
        " management (ALCOA+)', the title of the document it replaced.",
    ),
    "WHO TRS 1044 Annex 4": Source(
        "WHO guidelines on technology transfer in pharmaceutical manufacturing (WHO"
        " Technical Report Series No. 1044, Annex 4)",
        "WHO",
        2022,
        "Title and structure (phases of a technology transfer project: quality control:"
        " analytical procedure transfer) checked on gmp-compliance.org and igmpi.ac.in;"
        " it replaces the 2011 guideline (TRS 961 Annex 7).",
    ),
    "21 CFR Part 11": Source(
        "US 21 CFR Part 11: Electronic records; electronic signatures",
        "US FDA",
        1997,
        "Sections cited (11.10(a), (c), (d), (e), 11.50, 11.70) checked against the text on"
        " law.cornell.edu and gpo.gov.",
    ),
}
"""Every citable document by the key a reference uses."""

ARTICLE_NUMBER = re.compile(
    r"第\s*[0-9一二三四五六七八九十百千零〇]+\s*条|\bArticles?\s*\d|\bArt\.\s*\d|§|\bClauses?\s*\d",
    re.IGNORECASE,
)
"""An article (or clause, or §) number in a reference's section text."""

CHECKED_NUMBERED_SECTIONS: frozenset[tuple[str, str]] = frozenset(
    {
        # 21 CFR 11.10 (a), (c), (d), (e): law.cornell.edu/cfr/text/21/11.10 and gpo.gov.
        ("21 CFR Part 11", "§ 11.10(a) Validation of systems"),
        ("21 CFR Part 11", "§ 11.10(c) Protection of records"),
        ("21 CFR Part 11", "§ 11.10(d) Limiting system access to authorized individuals"),
        ("21 CFR Part 11", "§ 11.10(e) Audit trails"),
        # 11.50 and 11.70: law.lawstack.com/cfr/21/11.50, gpo.gov CFR-1999 sec11-70.
        ("21 CFR Part 11", "§ 11.50 Signature manifestations"),
        ("21 CFR Part 11", "§ 11.70 Signature/record linking"),
    }
)
"""(document, section) pairs whose article number was checked against the text."""
