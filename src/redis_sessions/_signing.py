"""HMAC-SHA256 signing of the session id carried in the cookie, with secret rotation.

The cookie value is ``<id>.<signature>``; the signature is URL-safe base64 of
``HMAC-SHA256(key, id)``. Secrets are given newest first: the first signs, all verify, so a
secret can be rotated out by appending the new one at the front and dropping the old one later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["Signer"]

# Domain separation: the same application secret may also sign other things (CSRF tokens, ...).
_KEY_SALT = b"redis-sessions.cookie-signature"
# id (<=128) + "." + signature (43): anything longer is rejected before any hashing.
MAX_SIGNED_LENGTH = 128 + 1 + 43


class Signer:
    """Sign and verify session ids with a list of secrets (first signs, all verify).

    Comparison uses `hmac.compare_digest`, so verification time does not depend on how many
    leading characters of a forged signature are right.
    """

    __slots__ = ("_keys",)

    def __init__(self, secrets: str | bytes | Sequence[str | bytes]) -> None:
        if isinstance(secrets, (str, bytes)):
            secrets = [secrets]
        if not secrets:
            raise ValueError("secret: at least one secret is required")
        keys = []
        for secret in secrets:
            raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
            if len(raw) < 16:
                raise ValueError("secret: each secret must be at least 16 bytes long")
            keys.append(hashlib.sha256(_KEY_SALT + raw).digest())
        self._keys: tuple[bytes, ...] = tuple(keys)

    @staticmethod
    def _signature(key: bytes, value: str) -> str:
        mac = hmac.new(key, value.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def sign(self, value: str) -> str:
        """Return ``value.signature`` signed with the first secret."""
        return f"{value}.{self._signature(self._keys[0], value)}"

    def unsign(self, signed: str) -> tuple[str, int] | None:
        """Verify `signed` and return ``(value, index of the secret that verified)``.

        Returns None for anything that is not a validly signed value (no separator, wrong
        length, non-ASCII, bad signature): a normal outcome, not an error.
        """
        if len(signed) > MAX_SIGNED_LENGTH or not signed.isascii():
            return None
        value, sep, signature = signed.rpartition(".")
        if not sep or not value:
            return None
        for index, key in enumerate(self._keys):
            if hmac.compare_digest(signature, self._signature(key, value)):
                return value, index
        return None
