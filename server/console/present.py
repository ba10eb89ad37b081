"""How the console shows values: times in the reader's zone to the minute, a
classification with its PIC/S and NMPA labels (or as disputed), a field value as text.

Pure functions of values, the reader's language (``Messages``) and zone: the pages'
templates call them and hold no rule themselves.
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.console.messages import Messages
from sync.fielddata import CLASSIFICATION_LABELS

__all__ = ["DEFAULT_TZ", "Presenter", "zone"]

DEFAULT_TZ = "Asia/Shanghai"


def zone(name: str | None) -> tuple[str, tzinfo]:
    """The zone of that IANA name, else the default (China Standard Time)."""
    try:
        if name and len(name) < 64:
            return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    return DEFAULT_TZ, ZoneInfo(DEFAULT_TZ)


class Presenter:
    """The formatting helpers of one page, for one reader."""

    def __init__(self, t: Messages, tz_name: str | None) -> None:
        self.t = t
        self.tz_name, self.tz = zone(tz_name)

    def when(self, value: datetime | str | None) -> str:
        """A time in the reader's zone, to the minute (``2026-12-04 22:18``)."""
        if value is None or value == "":
            return ""
        if isinstance(value, str):
            try:
                at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
        else:
            at = value
        if at.tzinfo is None:
            return at.strftime("%Y-%m-%d %H:%M")
        return at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def classification(self, value: Any, *, disputed: bool = False) -> dict[str, str]:
        """``{"key", "pics", "nmpa"}`` for a badge: ``key`` is the CSS class
        (critical, major, other, none, disputed); a disputed classification never
        shows one of its values."""
        if disputed:
            return {
                "key": "disputed",
                "pics": self.t("cls_disputed"),
                "nmpa": "",
                "title": self.t("cls_disputed_long"),
            }
        if value not in CLASSIFICATION_LABELS:
            return {"key": "none", "pics": self.t("cls_none"), "nmpa": "", "title": ""}
        return {
            "key": str(value),
            "pics": self.t(f"cls_{value}"),
            "nmpa": self.t(f"nmpa_{value}"),
            "title": "",
        }

    def class_name(self, value: Any) -> str:
        """A classification in words, both scales (``Major / NMPA: major defect``)."""
        c = self.classification(value)
        return f"{c['pics']} / {c['nmpa']}" if c["nmpa"] else c["pics"]

    def value(self, v: Any) -> str:
        """A field value as text: strings as they are, lists joined, others as JSON."""
        if v is None:
            return self.t("empty_value")
        if isinstance(v, str):
            return v if v else self.t("empty_value")
        if isinstance(v, bool):
            return self.t("yes") if v else self.t("no")
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return "; ".join(v) if v else self.t("empty_value")
        return json.dumps(v, ensure_ascii=False, sort_keys=True)

    def field_value(self, field: str, v: Any) -> str:
        """A value of a named field: a classification in words, a status by name."""
        if field == "classification":
            return self.class_name(v)
        if field == "status" and isinstance(v, str):
            return self.t(f"st_{v}")
        return self.value(v)
