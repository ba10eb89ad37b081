"""The engine and the checklist data never load the web framework."""

from __future__ import annotations

import subprocess
import sys


def test_sync_and_checklists_import_no_litestar():
    code = (
        "import sys, pkgutil, importlib\n"
        "import sync, checklists\n"
        "for pkg in (sync, checklists):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(m for m in sys.modules if m == 'litestar' or m.startswith('litestar.'))\n"
        "print(len([m for m in sys.modules if m.startswith(('sync.', 'checklists.'))]))\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip()) >= 8  # it really imported the modules
