"""Errors that name the field at fault, with a message the pages translate."""

from __future__ import annotations

from typing import Any


def N_(message: str) -> str:
    """Mark a message for translation; pages translate it where they show it."""
    return message


class FieldError(ValueError):
    """A value is not valid: which field, a translatable message and its parameters."""

    def __init__(self, field: str, message: str, **params: Any) -> None:
        self.field = field
        self.message = message
        self.params = params
        super().__init__(f"{field}: {message % params if params else message}")
