"""One key per purpose, derived from ELSHI_SECRET_KEY, and what is done with them.

Every signature, sealed value and blind index of elshi is made with a key derived from the
secret key for that one purpose (HKDF-SHA256, the purpose in the info string), never with the
secret key itself: a key that leaks from one use (a session cookie signer, say) opens nothing
else. Keys of ELSHI_SECRET_KEY_PREVIOUS are accepted to verify and to open, never to sign or
to seal, so links and sessions made before a rotation stay valid until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

if TYPE_CHECKING:
    from elshi.settings import Settings

SESSION = "session"
CSRF = "csrf"
CITIZEN_SESSION = "citizen-session"
CHECKIN = "checkin"
TELEGRAM_LINK = "telegram-link"
UNSUBSCRIBE = "unsubscribe"
SEALING = "sealing"
CREDENTIALS = "credentials"
BLIND_INDEX = "blind-index"
PURPOSES = frozenset(
    {SESSION, CSRF, CITIZEN_SESSION, CHECKIN, TELEGRAM_LINK, UNSUBSCRIBE, SEALING}
    | {CREDENTIALS, BLIND_INDEX}
)

SEALED_PREFIX = "sealed:"


class SealedUnreadable(ValueError):
    """A sealed value cannot be opened with the configured secret keys."""


@lru_cache(maxsize=256)
def derive(secret: str, purpose: str) -> bytes:
    """Return the 32-byte key of one purpose derived from one secret key (HKDF-SHA256)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"elshi",
        info=b"elshi purpose key v1: " + purpose.encode(),
    ).derive(secret.encode())


def secrets_of(settings: Settings) -> list[str]:
    """The current secret key first, then the previous ones (newest first)."""
    return [settings.secret_key, *settings.previous_secret_keys]


def purpose_key(settings: Settings, purpose: str) -> bytes:
    """The key that signs or seals for `purpose` (from the current secret key only)."""
    return derive(settings.secret_key, purpose)


def verify_keys(settings: Settings, purpose: str) -> list[bytes]:
    """Every key accepted to verify or open for `purpose`: the current one first."""
    return [derive(s, purpose) for s in secrets_of(settings)]


def signer(settings: Settings, purpose: str, salt: str) -> URLSafeTimedSerializer:
    """A timed signer that signs with the current key and accepts the previous ones."""
    # itsdangerous signs with the last key of the list and tries them all to verify.
    return URLSafeTimedSerializer(list(reversed(verify_keys(settings, purpose))), salt=salt)


def untimed_signer(settings: Settings, purpose: str, salt: str) -> URLSafeSerializer:
    """A signer without a date, as `signer` for keys."""
    return URLSafeSerializer(list(reversed(verify_keys(settings, purpose))), salt=salt)


def mac(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of data."""
    return hmac.new(key, data, hashlib.sha256).digest()


def _fernet(key: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(key))


def _legacy_key(secret: str, salt: bytes) -> bytes:
    """A key as made before purpose keys (HKDF-SHA256, a salt per use, info "fernet"); used
    only to open what such keys sealed, so that it can be sealed again."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"fernet").derive(
        secret.encode()
    )


# ---------------------------------------------------------------------------- blind indexes

PHONE = "phone"
PASSPORT = "passport"
#: Trailing digits of a phone number that its index covers: the subscriber number without the
#: country code or a trunk prefix, so "+7 701 234 56 78" and "8 701 234 56 78" match.
PHONE_DIGITS = 9


def normalise_phone(value: str | None) -> str:
    """The digits of a phone number as in E.164 (no +, 00 or separators); "" for too few."""
    digits = re.sub(r"\D", "", value or "")
    if digits.startswith("00"):
        digits = digits[2:]
    return digits if len(digits) >= 6 else ""


def normalise_passport(value: str | None) -> str:
    """A passport number uppercased, without spaces or hyphens."""
    return re.sub(r"[\s\-]", "", value or "").upper()


def _index_text(kind: str, value: str | None) -> str:
    if kind == PHONE:
        return normalise_phone(value)[-PHONE_DIGITS:]
    if kind == PASSPORT:
        return normalise_passport(value)
    raise ValueError(f"unknown blind index {kind!r}")


def blind_index(key: bytes, kind: str, value: str | None) -> str | None:
    """HMAC-SHA256 (hex) of the normalised value under the blind-index key; None when empty."""
    text = _index_text(kind, value)
    if not text:
        return None
    return mac(key, f"{kind}:{text}".encode()).hex()


# ---------------------------------------------------------------------------- the keyring


class Keyring:
    """The sealing and blind-index keys one database connection uses.

    Seals with the current key; opens with the current and the previous ones. `legacy` opens
    values sealed before purpose keys existed (used only by the migration that re-seals them).
    """

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("a keyring needs at least one secret key")
        self.sealing = [_fernet(derive(s, SEALING)) for s in secrets]
        self.opener = MultiFernet(self.sealing)
        self.index_keys = [derive(s, BLIND_INDEX) for s in secrets]
        self.legacy = MultiFernet([_fernet(_legacy_key(s, b"elshi.sealed")) for s in secrets])

    @classmethod
    def of(cls, settings: Settings) -> Keyring:
        """The keyring of these settings."""
        return cls(secrets_of(settings))

    def seal(self, text: str) -> str:
        """Encrypt text with the current sealing key (Fernet: AES-128-CBC and HMAC-SHA256)."""
        return SEALED_PREFIX + self.sealing[0].encrypt(text.encode()).decode()

    def open(self, value: str, *, legacy: bool = False) -> str:
        """Decrypt a sealed value (current or previous key) or raise SealedUnreadable."""
        token = value.removeprefix(SEALED_PREFIX).encode()
        try:
            return self.opener.decrypt(token).decode()
        except InvalidToken:
            if legacy:
                try:
                    return self.legacy.decrypt(token).decode()
                except InvalidToken:
                    pass
        raise SealedUnreadable(
            "a sealed value cannot be decrypted: ELSHI_SECRET_KEY changed since it was saved "
            "(put the old key in ELSHI_SECRET_KEY_PREVIOUS, see `elshi keys rotate`)"
        )

    def opens_with_current(self, value: str) -> bool:
        """True when the value is sealed with the current key (a rotation may skip it)."""
        try:
            self.sealing[0].decrypt(value.removeprefix(SEALED_PREFIX).encode())
        except InvalidToken:
            return False
        return True

    def index(self, kind: str, value: str | None) -> str | None:
        """The blind index of a value under the current key (what is stored)."""
        return blind_index(self.index_keys[0], kind, value)

    def lookups(self, kind: str, value: str | None) -> list[str]:
        """Every index a stored row of this value may carry (current and previous keys)."""
        found = [blind_index(k, kind, value) for k in self.index_keys]
        return [h for h in found if h is not None]


# ---------------------------------------------------------------------------- channel credentials


class CredentialsUnreadable(ValueError):
    """Stored credentials cannot be decrypted with the configured key."""


def new_credentials_key() -> str:
    """Return a fresh key for ELSHI_CREDENTIALS_KEY."""
    return Fernet.generate_key().decode()


def _credentials_fernet(settings: Settings) -> MultiFernet:
    """Encrypts with ELSHI_CREDENTIALS_KEY, else with the credentials purpose key of the secret
    key; also opens with the purpose keys of ELSHI_SECRET_KEY_PREVIOUS."""
    if settings.credentials_key:
        try:
            return MultiFernet([Fernet(settings.credentials_key.encode())])
        except ValueError as exc:
            raise CredentialsUnreadable(
                "ELSHI_CREDENTIALS_KEY is not a Fernet key (make one with `elshi channels new-key`)"
            ) from exc
    return MultiFernet(credential_fernets(secrets_of(settings)))


def credential_fernets(secrets: Sequence[str]) -> list[Fernet]:
    """The credentials purpose key of each secret key, in the same order."""
    return [_fernet(derive(s, CREDENTIALS)) for s in secrets]


def legacy_credential_fernets(secrets: Sequence[str]) -> list[Fernet]:
    """The keys that encrypted credentials before purpose keys (used only to re-encrypt them)."""
    return [_fernet(_legacy_key(s, b"elshi.credentials")) for s in secrets]


def encrypt_credentials(settings: Settings, values: dict[str, Any]) -> str:
    """Return the encrypted JSON of a credentials dict (Fernet: AES-128-CBC, HMAC-SHA256)."""
    return _credentials_fernet(settings).encrypt(json.dumps(values).encode()).decode()


def decrypt_credentials(settings: Settings, token: str | None) -> dict[str, Any]:
    """Return the credentials dict from its encrypted form (empty when none are stored)."""
    if not token:
        return {}
    try:
        data = json.loads(_credentials_fernet(settings).decrypt(token.encode()))
    except InvalidToken as exc:
        raise CredentialsUnreadable(
            "the channel's credentials cannot be decrypted: the key changed "
            "(ELSHI_CREDENTIALS_KEY or ELSHI_SECRET_KEY); enter them again with "
            "`elshi channels set-secret`"
        ) from exc
    return data if isinstance(data, dict) else {}
