"""Channel credentials encrypted at rest: the names speak has always used for them.

The keys and the encryption are elshi.crypto's (its "channel credentials" section).
"""

from __future__ import annotations

from elshi.crypto import CredentialsUnreadable as CredentialsUnreadable
from elshi.crypto import decrypt_credentials as decrypt
from elshi.crypto import encrypt_credentials as encrypt
from elshi.crypto import legacy_credential_fernets as legacy_fernets
from elshi.crypto import new_credentials_key as new_key

__all__ = ["CredentialsUnreadable", "decrypt", "encrypt", "legacy_fernets", "new_key"]
