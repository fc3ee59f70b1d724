"""The errors of elshi: input that is not valid, a record that is not found, an action not allowed.

Services raise these; views turn them into pages (400 with the problems, 404, 403) and commands
into exit codes. A message is a translatable template (marked with N_) with its parameters, so
each page shows it in its reader's language. Domains subclass them to say what was refused
(InvalidUser, InvalidWatch, SpeakError, ...); callers catch the domain class or the base here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def N_(message: str) -> str:
    """Mark a message for translation; pages translate it where they show it."""
    return message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (a field, or "" for the whole request), a
    translatable message and its parameters."""

    where: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, gettext: Callable[[str], str] = N_) -> str:
        """The message in the language of `gettext`, its parameters filled in."""
        text = gettext(self.message)
        return text % self.params if self.params else text

    def __str__(self) -> str:
        return f"{self.where}: {self.text()}" if self.where else self.text()


class Invalid(ValueError):
    """The input was refused; `problems` say what and where. Nothing was stored."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems

    # The first problem's parts, for errors that carry one (most do).
    @property
    def field(self) -> str:
        """Where the (first) problem is."""
        return self.problems[0].where if self.problems else ""

    @property
    def message(self) -> str:
        """The (first) problem's translatable message."""
        return self.problems[0].message if self.problems else ""

    @property
    def params(self) -> dict[str, Any]:
        """The (first) problem's parameters."""
        return self.problems[0].params if self.problems else {}

    def translated(self, gettext: Callable[[str], str]) -> str:
        """Every problem in the language of `gettext`, without field names, joined by spaces."""
        return " ".join(p.text(gettext) for p in self.problems)


class FieldError(Invalid):
    """One field is not valid: its name, a translatable message and the message's parameters."""

    def __init__(self, field: str, message: str, **params: Any) -> None:
        super().__init__(Problem(field, message, params))


class InvalidRequest(Invalid):
    """The request as a whole is not valid (no one field is at fault): a translatable message
    and its parameters."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(Problem("", message, params))


class NotFound(LookupError):
    """No such record, or not one the actor may see (the two look the same on purpose)."""


class PermissionDenied(PermissionError):
    """The acting user lacks a role the action needs; the message names the permission."""
