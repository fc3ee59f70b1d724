"""A service split into modules along its sections still answers every name it had."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def forward_to(package: str | None, module: str, parts: tuple[str, ...]) -> Callable[[str], Any]:
    """Return a module `__getattr__` that finds a missing name in the first of `parts` (modules
    of `package`) whose `__all__` lists it, importing that part only when asked."""

    def __getattr__(name: str) -> Any:
        for part in parts:
            found = importlib.import_module(f"{package}.{part}")
            if name in found.__all__:
                return getattr(found, name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
