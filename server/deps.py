"""Named dependencies that route handlers declare (Litestar's explicit DI markers)."""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request
from litestar.di import NamedDependency

from server.accounts import Accounts
from server.auth import AuthService
from server.documents import Documents
from server.settings import Settings
from sync.authoring import Authoring
from sync.conclusion import Conclusions
from sync.engine import SyncEngine
from sync.models import Principal
from sync.notify import Notifier
from sync.rectification import Rectifications
from sync.registry import Registry
from sync.review import Review
from sync.storage import Store
from sync.uploads import Uploads

__all__ = [
    "AccountsDep",
    "AuthDep",
    "AuthedRequest",
    "AuthoringDep",
    "ConclusionsDep",
    "DocumentsDep",
    "EngineDep",
    "NotifierDep",
    "RectificationsDep",
    "RegistryDep",
    "ReviewDep",
    "SettingsDep",
    "StoreDep",
    "UploadsDep",
]

StoreDep: TypeAlias = NamedDependency[Store]
AuthDep: TypeAlias = NamedDependency[AuthService]
AccountsDep: TypeAlias = NamedDependency[Accounts]
RegistryDep: TypeAlias = NamedDependency[Registry]
AuthoringDep: TypeAlias = NamedDependency[Authoring]
EngineDep: TypeAlias = NamedDependency[SyncEngine]
NotifierDep: TypeAlias = NamedDependency[Notifier]
UploadsDep: TypeAlias = NamedDependency[Uploads]
ReviewDep: TypeAlias = NamedDependency[Review]
ConclusionsDep: TypeAlias = NamedDependency[Conclusions]
DocumentsDep: TypeAlias = NamedDependency[Documents]
RectificationsDep: TypeAlias = NamedDependency[Rectifications]
SettingsDep: TypeAlias = NamedDependency[Settings]

AuthedRequest: TypeAlias = Request[Principal, Any, Any]
"""A request that passed authentication: ``request.user`` is the Principal."""
