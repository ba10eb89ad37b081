"""The tablet app's browser tests use the console's: Debian's Chromium (one per module),
screenshots at desktop and tablet size, the watch on requests to other hosts, the
tablet CLI (tests/console/conftest.py)."""

from tests.console.conftest import browser

__all__ = ["browser"]
