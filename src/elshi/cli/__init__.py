"""The `elshi` command line, one module per area.

- common.py: what every command shares (settings, database, console, errors, exit codes);
  the domain command modules (crisis/commands.py, speak/commands.py, ...) import from it.
- root.py: the root app, the order of commands in `elshi --help`, and `main`.
- listen.py, accounts.py, keys.py, serve.py: the commands of the core areas.

`app` and `main` are loaded on first use, so that importing elshi.cli.common (as every
domain command module does) does not import every command module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elshi.cli.root import app, main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from elshi.cli import root

        return getattr(root, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
