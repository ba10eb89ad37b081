"""The ``inspectsync`` command on real files and a real SQLite database in tmp_path:
``checklists validate|diff|import|export``, ``init``, ``users`` and ``devices``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from checklists import LIBRARY_DIR, load_file
from checklists.loader import dump_template
from server.cli import _Ctx, main
from server.demo import SYSTEM
from server.settings import Settings
from sync.models import Authority, Device

REPO = Path(__file__).resolve().parents[2]
CELL_BANK = LIBRARY_DIR / "cell_bank.yaml"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No INSPECTSYNC_* setting from the caller's environment; run in tmp_path so a
    command that falls back to ./data never touches the repository."""
    for name in list(os.environ):
        if name.startswith("INSPECTSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _edit(src: str, old: str, new: str) -> str:
    assert old in src, old
    return src.replace(old, new, 1)


# --- checklists validate -----------------------------------------------------------------


def test_validate_the_bundled_library(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "checklists", "validate", str(LIBRARY_DIR))
    assert code == 0, err
    assert err == ""
    assert out.count("ok    ") == 13
    assert "13 valid, 0 invalid" in out
    assert "cell_bank.yaml  (cell_bank, " in out


def test_validate_through_the_installed_command() -> None:
    exe = Path(sys.executable).parent / "inspectsync"
    proc = subprocess.run(
        [str(exe), "checklists", "validate", "checklists/library"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "13 valid, 0 invalid" in proc.stdout


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        (
            "      - key: cb_history\n",
            "      - key: cb_history\n        min: 3\n",
            "cell_bank.yaml: sections[cb_system].items[cb_history].min",
            "min is only allowed on number items, not yes_no_na",
        ),
        (
            "      - key: cb_history\n",
            "      - key: cb_history\n        colour: red\n",
            "cell_bank.yaml: sections[cb_system].items[cb_history]",
            "Object contains unknown field `colour`",
        ),
        (
            '{document: "ICH Q7", section: "18.2 Cell Bank Maintenance and Record Keeping"}',
            '{document: "ICH Q77", section: "18.2"}',
            "cell_bank.yaml: sections[cb_system].items[cb_history].references[1].document",
            "unknown document 'ICH Q77'",
        ),
        (
            '      zh: "细胞株从来源、克隆至建立主细胞库的历史是否有完整记录？"\n',
            '      zh: ""\n',
            "cell_bank.yaml: sections[cb_system].items[cb_history].prompt.zh",
            "missing zh text",
        ),
    ],
    ids=["limit-on-yes_no_na", "unknown-field", "unknown-document", "missing-zh"],
)
def test_validate_a_broken_file_names_the_path(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    path: str,
    reason: str,
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "cell_bank.yaml").write_text(
        _edit(CELL_BANK.read_text(encoding="utf-8"), old, new), encoding="utf-8"
    )
    good = (LIBRARY_DIR / "cold_chain.yaml").read_text(encoding="utf-8")
    (lib / "cold_chain.yaml").write_text(good, encoding="utf-8")

    code, out, err = run(capsys, "checklists", "validate", str(lib))
    assert code == 1
    assert f"FAIL  {path}: {reason}" in err
    assert "1 valid, 1 invalid" in out
    assert "ok    " in out and "cold_chain.yaml" in out

    # One file given by name fails the same way.
    code, _, err = run(capsys, "checklists", "validate", str(lib / "cell_bank.yaml"))
    assert code == 1
    assert path in err


def test_validate_refuses_nothing_to_check_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, _ = run(capsys, "checklists", "validate", str(empty))
    assert code == 1
    assert "0 valid, 0 invalid" in out
    code, _, err = run(capsys, "checklists", "validate", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "nope.yaml" in err


# --- checklists diff of two files --------------------------------------------------------


def test_diff_of_two_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = CELL_BANK.read_text(encoding="utf-8")
    new = _edit(src, "      - key: cb_history\n", "      - key: cb_history_v2\n")
    new = _edit(new, "Which cell bank tiers are held at this site?", "Which tiers are held?")
    old_file, new_file = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old_file.write_text(src, encoding="utf-8")
    new_file.write_text(new, encoding="utf-8")

    code, out, err = run(capsys, "checklists", "diff", str(old_file), str(new_file))
    assert code == 0, err
    d = json.loads(out)
    assert d["items_added"] == ["cb_history_v2"]
    assert d["items_removed"] == ["cb_history"]
    assert d["items_changed"]["cb_tiers_held"]["prompt"]["new"]["en"] == "Which tiers are held?"
    assert d["sections_added"] == d["sections_removed"] == []

    code, out, _ = run(capsys, "checklists", "diff", str(old_file), str(old_file))
    assert code == 0
    assert json.loads(out)["items_changed"] == {}


# --- init / import / export against a database ---------------------------------------------


def test_init_import_export_and_stored_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "x.db")
    code, out, err = run(capsys, "init", "--db", db)
    assert code == 0, err
    assert "checklist library: 13 templates current" in out
    # Safe to run again: unchanged files create nothing.
    code, out, _ = run(capsys, "init", "--db", db)
    assert code == 0
    assert "13 templates current" in out

    changed = _edit(
        CELL_BANK.read_text(encoding="utf-8"),
        "Which cell bank tiers are held at this site?",
        "Which cell bank tiers does this site hold?",
    )
    src = tmp_path / "cell_bank.yaml"
    src.write_text(changed, encoding="utf-8")
    code, out, err = run(
        capsys, "checklists", "import", str(src), "--publish", "--changelog", "Reworded", "--db", db
    )
    assert code == 0, err
    assert f"{src}: cell_bank-v2 (published)" in out

    # The template key exports the newest version; it loads and equals what was imported.
    exported = tmp_path / "out.yaml"
    code, out, err = run(
        capsys, "checklists", "export", "cell_bank", "-o", str(exported), "--db", db
    )
    assert code == 0, err
    assert "cell_bank-v2 written to" in out
    assert load_file(exported) == load_file(src)

    # A version id exports that version, to standard output.
    code, out, _ = run(capsys, "checklists", "export", "cell_bank-v1", "--db", db)
    assert code == 0
    assert out == dump_template(load_file(CELL_BANK))

    code, out, err = run(capsys, "checklists", "diff", "cell_bank-v1", "cell_bank-v2", "--db", db)
    assert code == 0, err
    d = json.loads(out)
    assert list(d["items_changed"]) == ["cb_tiers_held"]
    assert d["items_added"] == d["items_removed"] == []

    code, _, err = run(capsys, "checklists", "export", "no_such", "--db", db)
    assert code == 1
    assert "no_such" in err


def test_import_as_draft_and_a_broken_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "x.db")
    assert run(capsys, "init", "--no-library", "--db", db)[0] == 0
    code, out, err = run(capsys, "checklists", "import", str(CELL_BANK), "--db", db)
    assert code == 0, err
    assert "cell_bank-v1 (draft)" in out

    broken = tmp_path / "cell_bank.yaml"
    broken.write_text(
        _edit(
            CELL_BANK.read_text(encoding="utf-8"),
            "      - key: cb_history\n",
            "      - key: cb_history\n        max: 1\n",
        ),
        encoding="utf-8",
    )
    code, _, err = run(capsys, "checklists", "import", str(broken), "--publish", "--db", db)
    assert code == 1
    assert "cell_bank.yaml: sections[cb_system].items[cb_history].max" in err
    # Still only the draft.
    code, out, _ = run(capsys, "checklists", "export", "cell_bank", "--db", db)
    assert code == 0
    assert out == dump_template(load_file(CELL_BANK))


# --- users and devices -------------------------------------------------------------------


def _seed(db: str, *, device_for: str | None = None) -> None:
    """An authority (users need one) and, optionally, a device of a user."""

    async def go() -> None:
        ctx = _Ctx(Settings(db_path=db))
        await ctx.store.open()
        try:
            if await ctx.store.get_record("authority", "js-mpa") is None:
                await ctx.registry.create_reference(
                    SYSTEM,
                    "authority",
                    "js-mpa",
                    Authority(name="Jiangsu MPA", level="provincial", province="Jiangsu"),
                )
            if device_for is not None:
                user = await ctx.accounts.find(device_for)
                await ctx.store.add_device(
                    Device(
                        id="tab-cli-1",
                        user_id=user.id,
                        name="Field tablet 1",
                        platform="android",
                        app_version="1.4.0",
                        registered_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
                    )
                )
        finally:
            await ctx.store.close()

    asyncio.run(go())


def test_users_add_list_disable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "x.db")
    assert run(capsys, "init", "--no-library", "--db", db)[0] == 0
    _seed(db)
    monkeypatch.setenv("INSPECTSYNC_NEW_PASSWORD", "field-work-2026")

    code, out, err = run(
        capsys,
        "users", "add", "insp.cli", "--role", "inspector", "--authority", "js-mpa",
        "--name", "Inspector Cli", "--db", db,
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("added insp.cli (inspector, js-mpa) id ")

    code, out, _ = run(capsys, "users", "list", "--db", db)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("insp.cli "))
    assert "inspector" in line and "js-mpa" in line and "active" in line
    assert line.endswith("Inspector Cli")

    code, out, _ = run(capsys, "users", "disable", "insp.cli", "--db", db)
    assert (code, out.strip()) == (0, "insp.cli disabled")
    code, out, _ = run(capsys, "users", "list", "--db", db)
    line = next(line for line in out.splitlines() if line.startswith("insp.cli "))
    assert "disabled" in line and "active" not in line
    code, out, _ = run(capsys, "users", "enable", "insp.cli", "--db", db)
    assert (code, out.strip()) == (0, "insp.cli enabled")

    # The same username twice, an unknown authority, a short password: exit 1.
    code, _, err = run(
        capsys,
        "users",
        "add",
        "insp.cli",
        "--role",
        "inspector",
        "--authority",
        "js-mpa",
        "--db",
        db,
    )
    assert code == 1 and err.startswith("inspectsync: ")
    code, _, err = run(
        capsys, "users", "add", "insp.x", "--role", "inspector", "--authority", "zz-mpa", "--db", db
    )
    assert code == 1
    assert "no authority 'zz-mpa'" in err
    monkeypatch.setenv("INSPECTSYNC_NEW_PASSWORD", "short")
    code, _, err = run(
        capsys, "users", "add", "insp.y", "--role", "inspector", "--authority", "js-mpa", "--db", db
    )
    assert code == 1
    assert "at least 8 characters" in err
    code, out, _ = run(capsys, "users", "list", "--db", db)
    assert [line.split()[0] for line in out.splitlines()] == ["insp.cli"]

    code, _, err = run(capsys, "users", "disable", "nobody", "--db", db)
    assert code == 1
    assert "no user 'nobody'" in err


def test_devices_list_and_revoke(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "x.db")
    assert run(capsys, "init", "--no-library", "--db", db)[0] == 0
    code, out, _ = run(capsys, "devices", "list", "--db", db)
    assert (code, out) == (0, "")

    _seed(db)
    monkeypatch.setenv("INSPECTSYNC_NEW_PASSWORD", "field-work-2026")
    for name in ("insp.a", "insp.b"):
        code, _, err = run(
            capsys, "users", "add", name, "--role", "inspector", "--authority", "js-mpa", "--db", db
        )
        assert code == 0, err
    _seed(db, device_for="insp.a")

    code, out, _ = run(capsys, "devices", "list", "--db", db)
    assert code == 0
    [line] = out.splitlines()
    assert line.startswith("tab-cli-1 ")
    assert "active" in line and "seen never" in line and "1.4.0" in line
    assert line.endswith("Field tablet 1")
    code, out, _ = run(capsys, "devices", "list", "--user", "insp.b", "--db", db)
    assert (code, out) == (0, "")

    code, out, _ = run(capsys, "devices", "revoke", "tab-cli-1", "--db", db)
    assert code == 0
    assert out.startswith("device tab-cli-1 revoked at ")
    code, out, _ = run(capsys, "devices", "list", "--user", "insp.a", "--db", db)
    assert "revoked " in out and "active" not in out

    code, _, err = run(capsys, "devices", "revoke", "tab-nope", "--db", db)
    assert code == 1
    assert err.startswith("inspectsync: ")
