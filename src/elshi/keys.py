"""Sealed columns and blind indexes as stored: seal what is plain, re-seal under a new key.

The migration that introduced sealing and `elshi keys rotate` both walk every sealed value
with SQL (no models, so a migration can use it): open it with the keys given (a plain value
is taken as it is), seal it again with the target key, and recompute the blind indexes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Connection, Text, bindparam, cast, column, inspect, select, table, update

from elshi.crypto import (
    PASSPORT,
    PHONE,
    SEALED_PREFIX,
    Keyring,
    SealedUnreadable,
    credential_fernets,
    legacy_credential_fernets,
)


@dataclass(frozen=True)
class Indexed:
    """A blind index column kept from a sealed column (from one key of it, for JSON)."""

    column: str
    source: str
    kind: str
    pick: Callable[[str], str | None] | None = None


def passport_of(answers: str) -> str | None:
    """The passport number in the JSON text of a request's answers."""
    try:
        data = json.loads(answers) if answers else {}
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return next((str(v) for k, v in data.items() if "passport" in k and v), None)


#: Every sealed column, per table (TOTP keys and citizens' personal data).
SEALED: dict[str, tuple[str, ...]] = {
    "user_account": ("totp_secret",),
    "citizen": ("totp_secret", "phone"),
    "registration": ("address", "phone", "emergency_contact", "companions"),
    "service_request": ("answers",),
    "consular_message": ("body",),
    "crisis_recipient": ("phone", "officer_note"),
    "crisis_checkin": ("note",),
    "crisis_walkin": ("phone", "note"),
    "outbox": ("recipient", "payload"),
}
#: Blind indexes, per table.
INDEXED: dict[str, tuple[Indexed, ...]] = {
    "citizen": (Indexed("phone_index", "phone", PHONE),),
    "registration": (Indexed("phone_index", "phone", PHONE),),
    "service_request": (Indexed("passport_index", "answers", PASSPORT, passport_of),),
    "crisis_recipient": (Indexed("phone_index", "phone", PHONE),),
    "crisis_walkin": (Indexed("phone_index", "phone", PHONE),),
}
BATCH = 1000


@dataclass(frozen=True)
class Credentials:
    """Channel credentials (Fernet tokens of JSON): opened with `opener`, encrypted with `target`
    (None: left as they are, because ELSHI_CREDENTIALS_KEY encrypts them, not the secret key)."""

    opener: MultiFernet
    target: Fernet | None
    #: The key of the old derivation (before purpose keys): a downgrade encrypts with it.
    legacy: Fernet | None = None


def _open(keyring: Keyring, value: str, legacy: bool) -> str:
    return keyring.open(value, legacy=legacy) if value.startswith(SEALED_PREFIX) else value


def _present(conn: Connection, sealed: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """The tables of `sealed` this database has (a revision before the one adding a table
    runs without it)."""
    have = set(inspect(conn).get_table_names())
    return {name: columns for name, columns in sealed.items() if name in have}


def pending(conn: Connection, *, sealed: dict[str, tuple[str, ...]] = SEALED) -> int:
    """How many rows hold a sealed column that is not empty (work for a re-seal)."""
    total = 0
    for name, columns in _present(conn, sealed).items():
        t = table(name, column("id"), *(column(c) for c in columns))
        for c in columns:
            # (cast: before migration 0013 some of these are JSON columns)
            stmt = select(t.c.id).where(t.c[c].is_not(None), cast(t.c[c], Text) != "").limit(1)
            total += len(conn.execute(stmt).all())
    return total


def reseal(
    conn: Connection,
    *,
    opener: Keyring,
    target: Keyring | None,
    legacy: bool = False,
    credentials: Credentials | None = None,
    sealed: dict[str, tuple[str, ...]] = SEALED,
    indexed: dict[str, tuple[Indexed, ...]] = INDEXED,
) -> dict[str, int]:
    """Open every sealed value (or take a plain one) and seal it with `target` (None: store it
    plain, for a downgrade); recompute the blind indexes with `target`'s (or `opener`'s) key.
    Return the number of rows rewritten per table. Runs in the caller's transaction."""
    counts: dict[str, int] = {}
    index_ring = target or opener
    for name, columns in _present(conn, sealed).items():
        indexes = indexed.get(name, ())
        written = [*columns, *(i.column for i in indexes)]
        t = table(name, column("id"), *(column(c) for c in dict.fromkeys([*columns, *written])))
        stmt = (
            update(t)
            .where(t.c.id == bindparam("_id"))
            .values({c: bindparam(f"_{c}") for c in written})
        )
        last, n = 0, 0
        while True:
            rows = conn.execute(
                select(t.c.id, *(t.c[c] for c in columns))
                .where(t.c.id > last)
                .order_by(t.c.id)
                .limit(BATCH)
            ).all()
            if not rows:
                break
            changes = []
            for row in rows:
                last = row[0]
                plain = {
                    c: None if v is None else _open(opener, str(v), legacy)
                    for c, v in zip(columns, row[1:], strict=True)
                }
                new: dict[str, Any] = {
                    f"_{c}": v if not v or target is None else target.seal(v)
                    for c, v in plain.items()
                }
                for i in indexes:
                    source = plain[i.source] or ""
                    value = i.pick(source) if i.pick else source
                    new[f"_{i.column}"] = index_ring.index(i.kind, value)
                changes.append({"_id": row[0], **new})
            conn.execute(stmt, changes)
            n += len(changes)
        counts[name] = n
    if credentials is not None and credentials.target is not None:
        counts["channel_account"] = _recrypt_credentials(conn, credentials)
    return counts


def _recrypt_credentials(conn: Connection, credentials: Credentials) -> int:
    assert credentials.target is not None
    t = table("channel_account", column("id"), column("secret"))
    rows = conn.execute(select(t.c.id, t.c.secret).where(t.c.secret.is_not(None))).all()
    changes = []
    for row_id, token in rows:
        if not token:
            continue
        try:
            plain = credentials.opener.decrypt(str(token).encode())
        except InvalidToken:
            raise SealedUnreadable(
                f"the credentials of channel account {row_id} cannot be decrypted with the "
                "configured keys"
            ) from None
        changes.append({"_id": row_id, "_secret": credentials.target.encrypt(plain).decode()})
    if changes:
        conn.execute(
            update(t).where(t.c.id == bindparam("_id")).values(secret=bindparam("_secret")),
            changes,
        )
    return len(changes)


def credential_keys(secrets: Sequence[str], *, fixed: bool, legacy: bool) -> Credentials:
    """The credential keys of these secret keys (the first is the one encrypting)."""
    fernets = credential_fernets(secrets)
    old = legacy_credential_fernets(secrets) if legacy else []
    return Credentials(
        opener=MultiFernet(fernets + old),
        target=None if fixed else fernets[0],
        legacy=None if fixed or not old else old[0],
    )


class RotationError(ValueError):
    """The new key cannot be used (empty, too short, or one already in use)."""


def reseal_all(
    conn: Connection, *, secrets: Sequence[str], credentials_fixed: bool
) -> dict[str, int]:
    """Seal everything with the first of `secrets`, opening with any of them (also re-encrypt
    channel credentials unless ELSHI_CREDENTIALS_KEY encrypts them) and recompute the blind
    indexes. Runs in the caller's transaction (all or nothing); running it again is harmless."""
    fernets = credential_fernets(secrets)
    return reseal(
        conn,
        opener=Keyring(secrets),
        target=Keyring(secrets[:1]),
        credentials=Credentials(
            opener=MultiFernet(fernets), target=None if credentials_fixed else fernets[0]
        ),
    )


def rotate(
    conn: Connection, *, old_secrets: Sequence[str], new_secret: str, credentials_fixed: bool
) -> dict[str, int]:
    """Re-seal every sealed value under `new_secret` (see reseal_all)."""
    new_secret = new_secret.strip()
    if len(new_secret) < 16:
        raise RotationError("the new secret key must be at least 16 characters (32 or more)")
    if new_secret in old_secrets:
        raise RotationError("the new secret key is the current key or a previous one")
    return reseal_all(conn, secrets=[new_secret, *old_secrets], credentials_fixed=credentials_fixed)
