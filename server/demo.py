"""Demo data that shows the real use: one ADC made in segments across two provinces.

- MAH: Huaxin Biologics (Suzhou, Jiangsu).
- Site A, Suzhou (Jiangsu): antibody drug substance: cell bank, upstream culture,
  harvest & purification, viral clearance; hands over frozen drug substance at -70 C.
- Site B, Hangzhou (Zhejiang): payload-linker & conjugation; hands over frozen ADC bulk.
- Site C, Taizhou (Jiangsu): formulation & aseptic filling, lyophilisation, visual
  inspection & packaging.
- Authorities: NMPA (national), Jiangsu MPA, Zhejiang MPA.
- A joint cross-province inspection of the conjugation site led by Zhejiang with
  Jiangsu taking part, and inspections that each province's inspectors cannot see of
  the other's.

Seeding is idempotent: it does nothing if the demo authority exists already.
"""

from __future__ import annotations

from datetime import date, timedelta

import msgspec

from checklists import LIBRARY_DIR, load_library
from server.accounts import Accounts
from sync.authoring import Authoring
from sync.errors import AlreadyExists
from sync.models import (
    Assignment,
    Authority,
    Chain,
    ChainLink,
    Inspection,
    InspectionStatus,
    InspectionType,
    Organisation,
    Principal,
    Product,
    Role,
    Site,
)
from sync.registry import Registry

__all__ = ["DEMO_PASSWORD", "DEMO_USERS", "load_checklist_library", "seed_demo"]

DEMO_PASSWORD = "inspect-demo-2026"  # noqa: S105 - printed demo credential

# username, display name, role, authority
DEMO_USERS = [
    ("admin", "System Administrator", Role.ADMIN, "nmpa"),
    ("sup.js", "Supervisor Chen (Jiangsu)", Role.SUPERVISOR, "js-mpa"),
    ("sup.zj", "Supervisor Wang (Zhejiang)", Role.SUPERVISOR, "zj-mpa"),
    ("insp.js1", "Inspector Li (Jiangsu)", Role.INSPECTOR, "js-mpa"),
    ("insp.js2", "Inspector Zhao (Jiangsu)", Role.INSPECTOR, "js-mpa"),
    ("insp.zj1", "Inspector Zhou (Zhejiang)", Role.INSPECTOR, "zj-mpa"),
    ("insp.zj2", "Inspector Xu (Zhejiang)", Role.INSPECTOR, "zj-mpa"),
]

SYSTEM = Principal(user_id="system", username="system", role=Role.ADMIN, authority_id="nmpa")


async def load_checklist_library(authoring: Authoring) -> list[str]:
    """Import and publish every bundled template; returns the versions now current.
    Re-running with unchanged files creates nothing."""
    out = []
    for template in load_library(LIBRARY_DIR):
        rec = await authoring.import_template(
            SYSTEM, template, publish=True, changelog="Bundled library"
        )
        out.append(rec.id)
    return out


async def seed_demo(registry: Registry, accounts: Accounts, today: date) -> bool:
    """Create the demo world. Returns False if it was there already."""
    try:
        await registry.create_reference(
            SYSTEM,
            "authority",
            "nmpa",
            Authority(
                name="National Medical Products Administration",
                level="national",
                name_zh="国家药品监督管理局",
            ),
        )
    except AlreadyExists:
        return False
    await load_checklist_library(registry.authoring)

    async def ref(kind: str, rid: str, body: msgspec.Struct) -> None:
        await registry.create_reference(SYSTEM, kind, rid, body)

    await ref(
        "authority",
        "js-mpa",
        Authority(
            name="Jiangsu Medical Products Administration",
            level="provincial",
            province="Jiangsu",
            name_zh="江苏省药品监督管理局",
        ),
    )
    await ref(
        "authority",
        "zj-mpa",
        Authority(
            name="Zhejiang Medical Products Administration",
            level="provincial",
            province="Zhejiang",
            name_zh="浙江省药品监督管理局",
        ),
    )
    await ref(
        "organisation",
        "org-huaxin",
        Organisation(name="Huaxin Biologics Co., Ltd. (MAH)", kind="mah"),
    )
    await ref(
        "organisation",
        "org-qiantang",
        Organisation(name="Qiantang ADC Services Co., Ltd.", kind="contract_manufacturer"),
    )
    await ref(
        "organisation",
        "org-taihu",
        Organisation(name="Taihu Sterile Manufacturing Co., Ltd.", kind="contract_manufacturer"),
    )
    await ref(
        "site",
        "site-suzhou-ds",
        Site(
            organisation_id="org-huaxin",
            name="Huaxin Suzhou antibody plant",
            province="Jiangsu",
            licence_number="JS20260011",
            address="88 Xinghu Street, Suzhou Industrial Park, Jiangsu",
        ),
    )
    await ref(
        "site",
        "site-hangzhou-adc",
        Site(
            organisation_id="org-qiantang",
            name="Qiantang Hangzhou conjugation facility",
            province="Zhejiang",
            licence_number="ZJ20260207",
            address="17 Yinhai Road, Qiantang District, Hangzhou, Zhejiang",
        ),
    )
    await ref(
        "site",
        "site-taizhou-fill",
        Site(
            organisation_id="org-taihu",
            name="Taihu Taizhou fill-finish plant",
            province="Jiangsu",
            licence_number="JS20260342",
            address="5 Yaocheng Avenue, Taizhou, Jiangsu",
        ),
    )
    await ref(
        "product",
        "prod-zv101",
        Product(
            name="Zelatuzumab vedotin (ZV-101), anti-HER2 ADC", category="adc", mah_id="org-huaxin"
        ),
    )
    links = [
        ("l1-mah", "mah_oversight", "site-suzhou-ds", ""),
        ("l2-cellbank", "cell_bank", "site-suzhou-ds", "Working cell bank vials"),
        ("l3-upstream", "upstream_culture", "site-suzhou-ds", "Clarified harvest"),
        ("l4-purif", "harvest_purification", "site-suzhou-ds", ""),
        (
            "l5-viral",
            "viral_clearance",
            "site-suzhou-ds",
            "Antibody drug substance, frozen, shipped at -70 C to Hangzhou",
        ),
        (
            "l6-conj",
            "conjugation",
            "site-hangzhou-adc",
            "ADC bulk drug substance, frozen, shipped at -70 C to Taizhou",
        ),
        ("l7-fill", "formulation_filling", "site-taizhou-fill", "Filled vials, partly stoppered"),
        ("l8-lyo", "lyophilisation", "site-taizhou-fill", "Lyophilised vials"),
        ("l9-pack", "inspection_packaging", "site-taizhou-fill", "Packed finished product"),
        ("l10-release", "qa_release", "site-suzhou-ds", ""),
    ]
    await ref(
        "chain",
        "chain-zv101",
        Chain(
            product_id="prod-zv101",
            name="ZV-101 segmented production chain",
            links=[
                ChainLink(id=i, stage_type=s, site_id=site, hands_over=h)  # type: ignore[arg-type]
                for i, s, site, h in links
            ],
        ),
    )

    users: dict[str, str] = {}
    for username, name, role, authority in DEMO_USERS:
        user = await accounts.add_user(
            username=username,
            display_name=name,
            role=role,
            authority_id=authority,
            password=DEMO_PASSWORD,
            user_id=f"u-{username.replace('.', '-')}",
        )
        users[username] = user.id

    start = today + timedelta(days=7)

    async def inspection(
        iid: str,
        title: str,
        site: str,
        link_ids: list[str],
        type_: InspectionType,
        lead: str,
        participating: list[str],
        team: list[tuple[str, str]],
        days: int,
    ) -> None:
        await registry.create_inspection(
            SYSTEM,
            iid,
            Inspection(
                title=title,
                site_id=site,
                chain_id="chain-zv101",
                link_ids=link_ids,
                type=type_,
                lead_authority_id=lead,
                participating_authority_ids=participating,
                planned_start=start,
                planned_end=start + timedelta(days=days),
            ),
        )
        for username, role in team:
            await registry.assign(
                SYSTEM, iid, Assignment(inspection_id=iid, user_id=users[username], role=role)
            )  # type: ignore[arg-type]

    await inspection(
        "insp-joint-conj",
        "Joint cross-province inspection: ZV-101 conjugation",
        "site-hangzhou-adc",
        ["l6-conj"],
        InspectionType.JOINT_CROSS_PROVINCE,
        "zj-mpa",
        ["js-mpa"],
        [("insp.zj1", "lead"), ("insp.js1", "member")],
        3,
    )
    await inspection(
        "insp-ds-routine",
        "Routine GMP inspection: ZV-101 antibody drug substance",
        "site-suzhou-ds",
        ["l2-cellbank", "l3-upstream", "l4-purif", "l5-viral"],
        InspectionType.ROUTINE,
        "js-mpa",
        [],
        [("insp.js1", "lead"), ("insp.js2", "member")],
        4,
    )
    await inspection(
        "insp-fill-pai",
        "Pre-approval inspection: ZV-101 fill, lyophilisation, packaging",
        "site-taizhou-fill",
        ["l7-fill", "l8-lyo", "l9-pack"],
        InspectionType.PRE_APPROVAL,
        "js-mpa",
        [],
        [("insp.js2", "lead")],
        3,
    )
    await inspection(
        "insp-conj-forcause",
        "For-cause inspection: conjugation deviations",
        "site-hangzhou-adc",
        ["l6-conj"],
        InspectionType.FOR_CAUSE,
        "zj-mpa",
        [],
        [("insp.zj2", "lead")],
        2,
    )
    await registry.transition(SYSTEM, "insp-ds-routine", InspectionStatus.IN_PROGRESS)
    return True
