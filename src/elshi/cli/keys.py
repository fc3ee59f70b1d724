"""The secret key from the command line: make one, rotate it, re-seal stored data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from elshi.cli.common import (
    Exit,
    console,
    database,
    fail,
    get_settings,
)
from elshi.settings import Settings

# ---------------------------------------------------------------------------- keys

keys_app = typer.Typer(
    help="The secret key: make one, rotate it (re-seal stored data).", no_args_is_help=True
)


@keys_app.command("new")
def keys_new(
    path: Annotated[Path, typer.Argument(help="Key file to write (must not exist yet).")],
) -> None:
    """Write a new random secret key to a file only its owner may read (ELSHI_SECRET_KEY_FILE)."""
    import secrets

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise fail(f"{path} exists already; choose another file", Exit.USAGE) from None
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    console.print(f"wrote a new secret key to {path} (mode 600)", highlight=False)


def _reseal(settings: Settings, action: str, work: Any) -> dict[str, int]:
    from sqlalchemy.orm import Session

    from elshi.accounts.service import audit
    from elshi.keys import RotationError

    db = database(settings)
    try:
        with db.engine.begin() as conn:
            counts: dict[str, int] = work(conn)
            with Session(bind=conn) as s:
                audit(db=s, action=action, object_type="keys", actor_label="cli", detail=counts)
                s.flush()
    except RotationError as exc:
        raise fail(str(exc), Exit.USAGE) from None
    except ValueError as exc:  # a value no configured key opens: nothing was changed
        raise fail(f"{exc}; nothing was changed") from None
    finally:
        db.dispose()
    return counts


@keys_app.command("rotate")
def keys_rotate(
    new_key_file: Annotated[
        Path | None,
        typer.Option(help="File holding the new secret key (else it is asked for)."),
    ] = None,
) -> None:
    """Re-seal all sealed data and blind indexes under a new secret key, in one transaction.

    Stop elshi first. Then put the new key in ELSHI_SECRET_KEY_FILE (or ELSHI_SECRET_KEY), the
    old one in ELSHI_SECRET_KEY_PREVIOUS (links and sessions made with it stay valid until they
    expire), and start elshi again.
    """
    from elshi.crypto import secrets_of
    from elshi.keys import rotate
    from elshi.settings import read_key_file

    settings = get_settings()
    if new_key_file is not None:
        try:
            keys = read_key_file(new_key_file, "--new-key-file")
        except ValueError as exc:
            raise fail(str(exc), Exit.USAGE) from None
        if len(keys) != 1:
            raise fail(f"--new-key-file: {new_key_file} must hold one key", Exit.USAGE)
        new_key = keys[0]
    else:
        new_key = typer.prompt("New secret key", hide_input=True, confirmation_prompt=True)
    counts = _reseal(
        settings,
        "keys.rotate",
        lambda conn: rotate(
            conn,
            old_secrets=secrets_of(settings),
            new_secret=new_key,
            credentials_fixed=bool(settings.credentials_key),
        ),
    )
    console.print(
        f"re-sealed {sum(counts.values()):,} rows under the new key. Now put the new key in "
        "ELSHI_SECRET_KEY_FILE and the old one in ELSHI_SECRET_KEY_PREVIOUS, then start elshi.",
        highlight=False,
    )


@keys_app.command("reseal")
def keys_reseal() -> None:
    """Re-seal under the current secret key whatever a previous key still opens (run it before
    removing ELSHI_SECRET_KEY_PREVIOUS), and recompute the blind indexes."""
    from elshi.crypto import secrets_of
    from elshi.keys import reseal_all

    settings = get_settings()
    counts = _reseal(
        settings,
        "keys.reseal",
        lambda conn: reseal_all(
            conn,
            secrets=secrets_of(settings),
            credentials_fixed=bool(settings.credentials_key),
        ),
    )
    console.print(f"re-sealed {sum(counts.values()):,} rows under the current key", highlight=False)
