"""Messages of ``server/console/admin_checklists.py``, in both languages (merged into the console's
catalogues by ``server/console/messages.py``; a key in one language only fails a test)."""

from __future__ import annotations

CHECKLISTS_EN: dict[str, str] = {}

CHECKLISTS_ZH: dict[str, str] = {}
