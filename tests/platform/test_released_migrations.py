"""Released migrations are history: their files never change again.

A database built at a release carries that release's schema and revision stamp; editing or
re-parenting a landed revision leaves such databases behind with no way for `elshi migrate`
to notice (it happened once, see revision 0015). A change of schema is a NEW revision after
the head. The digests below are of the files as released (line endings normalised).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from elshi.migrate import MIGRATIONS

#: revision -> sha256 of its file
RELEASED = {
    "0001": "b1aa5b34a3745e49463d9260685b0c23d5e9987902e894853ffc2bf43202062c",
    "0002": "e440b3962cd9d8ddeb0580ce6c69b3a66661f5406ad7af6d32409ba8cc3a4633",
    "0003": "59fc926ae7c88fc9c9ea7cd022197263332acb8b4d616de6a68a49be0fe4c31c",
    "0004": "fad7a7a6412909065e9f6293105c92f9e6362837536ff46093d9fee4289e9eee",
    "0005": "625df064653ec36482b2c8bb55895f9a2456fbe70fdc51e17ecfff821a19fae5",
    "0006": "b3a7ee6031e1261bcb18fa519ced0a4e70fe95775a35c10b3f681121944e09ac",
    "0007": "9ad75f4428333aacfabec8073db4a314e66cb04dbf5ae1f8ded1c98a8d550e81",
    "0008": "ec192c4dc0e183c5acce1b436d8072c5b1d1d18921d8667d9346acbbffedb1bd",
    "0009": "952dee53b63f9abe474fb13656f92ba3005a94952827a9a1587e2732912e51d5",
    "0010": "17c8a6f171166e85b0ea18d03f366de95271719cbbc5a3fe12c1f500b449c08b",
    "0011": "f35d5fd6e71764c2bb7e72d4890f7001c5fc21180573336ce62a4afab6687b35",
    "0012": "8bd1e33204fc4317bad45050dd647c8f5c3285999d2cee30c7335b3948348aaf",
    "0013": "a30791e0f3a2522a5b3f3c1cf0eed2ae466cd2d7382b15f3055004efb7a31bd4",
    "0014": "894c74671bf3c241d79fb3324c750740fa5a7083a0a7e4813887e894603bd62b",
    "0015": "95d25120d8d7f52ffb5343ed3d886ea8be176aa41d8643188594fce54dc36e01",
    "0016": "675133aa36a7e46fb57e3dcc0e43fa7034716d01a5147db10b9abddbab014a25",
    "0017": "6139822fd6ad5cc3c793a64746e06524ed082ac05e20357948b9382ffa801e74",
    "0018": "ef1461bb20512d66a1fdc162e91790801ed550105c9a683bcb3395dc52d309c5",
    "0019": "b0e5afed00263f7d9b046b4a080f9627c314ff4a496564dafc412f9de00b318f",
    "0020": "fbd22cbe0d2858bd7d0c8ddb053cf6a9533535b9a663c923087adc9cc19c28cd",
}


def _file(revision: str) -> Path:
    (path,) = (MIGRATIONS / "versions").glob(f"{revision}_*.py")
    return path


def _digest(revision: str) -> str:
    data = _file(revision).read_bytes().replace(b"\r\n", b"\n")
    return hashlib.sha256(data).hexdigest()


def test_released_revisions_are_unchanged() -> None:
    changed = [name for name, digest in RELEASED.items() if _digest(name) != digest]
    assert changed == [], (
        f"released migrations were edited: {changed}; restore them and put the change in a "
        "new revision after the head"
    )


def test_released_revisions_keep_their_place() -> None:
    """Each released revision is still there, with the same revision id and parent."""
    from alembic.script import ScriptDirectory

    from elshi.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    chain = {s.revision: s.down_revision for s in scripts.walk_revisions()}
    for n, rev in enumerate(sorted(RELEASED), start=1):
        assert rev == f"{n:04d}"
        assert chain[rev] == (f"{n - 1:04d}" if n > 1 else None), f"{rev} was re-parented"
