"""Password hashing (argon2id). No web framework here: the CLI uses it too."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sync.errors import InvalidInput

__all__ = ["Passwords"]


class Passwords:
    """argon2id hashing with argon2-cffi's recommended parameters."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        # A real hash to verify against when the username is unknown, so both paths
        # take the same time and do not reveal which usernames exist.
        self.dummy_hash = self.hasher.hash(secrets.token_hex(8))

    def hash(self, password: str) -> str:
        if len(password) < 8:
            raise InvalidInput("a password needs at least 8 characters", field="password")
        return self.hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
