"""Channel credentials encrypted at rest (Fernet: AES-128-CBC with HMAC-SHA256)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from elshi import crypto as keys_crypto
from elshi.settings import Settings


class CredentialsUnreadable(ValueError):
    """Stored credentials cannot be decrypted with the configured key."""


def new_key() -> str:
    """Return a fresh key for ELSHI_CREDENTIALS_KEY."""
    return Fernet.generate_key().decode()


def _fernet(settings: Settings) -> MultiFernet:
    """Encrypts with ELSHI_CREDENTIALS_KEY, else with the credentials purpose key of the secret
    key; also opens with the purpose keys of ELSHI_SECRET_KEY_PREVIOUS."""
    if settings.credentials_key:
        try:
            return MultiFernet([Fernet(settings.credentials_key.encode())])
        except ValueError as exc:
            raise CredentialsUnreadable(
                "ELSHI_CREDENTIALS_KEY is not a Fernet key (make one with `elshi channels new-key`)"
            ) from exc
    keys = keys_crypto.verify_keys(settings, keys_crypto.CREDENTIALS)
    return MultiFernet([Fernet(base64.urlsafe_b64encode(k)) for k in keys])


def legacy_fernets(secrets: Sequence[str]) -> list[Fernet]:
    """The keys that encrypted credentials before purpose keys (used only to re-encrypt them)."""
    return [
        Fernet(
            base64.urlsafe_b64encode(
                HKDF(
                    algorithm=hashes.SHA256(), length=32, salt=b"elshi.credentials", info=b"fernet"
                ).derive(secret.encode())
            )
        )
        for secret in secrets
    ]


def encrypt(settings: Settings, values: dict[str, Any]) -> str:
    """Return the encrypted JSON of a credentials dict."""
    return _fernet(settings).encrypt(json.dumps(values).encode()).decode()


def decrypt(settings: Settings, token: str | None) -> dict[str, Any]:
    """Return the credentials dict from its encrypted form (empty when none are stored)."""
    if not token:
        return {}
    try:
        data = json.loads(_fernet(settings).decrypt(token.encode()))
    except InvalidToken as exc:
        raise CredentialsUnreadable(
            "the channel's credentials cannot be decrypted: the key changed "
            "(ELSHI_CREDENTIALS_KEY or ELSHI_SECRET_KEY); enter them again with "
            "`elshi channels set-secret`"
        ) from exc
    return data if isinstance(data, dict) else {}
