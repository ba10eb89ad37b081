"""Messages of ``server/console/admin.py``, in both languages (merged into the console's
catalogues by ``server/console/messages.py``; a key in one language only fails a test)."""

from __future__ import annotations

ADMIN_EN: dict[str, str] = {}

ADMIN_ZH: dict[str, str] = {}
