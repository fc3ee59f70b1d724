"""Log lines: text or JSON (ELSHI_LOG_FORMAT), each with the id of the request it belongs to,
and no personal data.

Personal data stays out of logs in three ways: elshi's own messages name records by id, never
by e-mail, phone or document number; SQL statements are logged without their parameters
(the engine is made with hide_parameters) and the rows SQLAlchemy logs at DEBUG are dropped;
and a filter on every handler masks what still
looks like an e-mail address or a phone number.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

#: The id of the request being answered (empty outside a request).
request_id: ContextVar[str] = ContextVar("elshi_request_id", default="")

#: An incoming X-Request-ID is kept only when it looks like an id (else a new one is made).
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

#: What looks like a phone number: + or 0, then 7 to 15 digits with spaces, dots or dashes.
_PHONE = re.compile(r"(?<![\w.])(?:\+|00)\d(?:[ ().-]?\d){6,14}(?!\w)")


def mask_phones(text: str) -> str:
    """Replace what looks like an international phone number with +***."""
    return _PHONE.sub("+***", text)


class ScrubFilter(logging.Filter):
    """Mask e-mail addresses and phone numbers in a record and stamp it with the request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        from elshi.accounts.service import MaskEmailsFilter

        if record.name.startswith("sqlalchemy.engine") and record.levelno < logging.INFO:
            return False  # result rows: they hold what was read, opened (personal data)

        MaskEmailsFilter().filter(record)
        if isinstance(record.msg, str):
            record.msg = mask_phones(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask_phones(a) if isinstance(a, str) else a for a in record.args)
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id (and the error)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "") or request_id.get()
        if rid:
            entry["request_id"] = rid
        for key in ("method", "route", "status", "ms"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        return f"{line} [request {rid}]" if rid else line


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(*, level: int | str, fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send every log record to one handler on stderr (or `stream`), scrubbed, as text or JSON."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "elshi", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.elshi = True  # type: ignore[attr-defined]
    handler.addFilter(ScrubFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    for other in list(root.handlers):  # basicConfig's handler: scrubbed too
        if other is not handler and not any(isinstance(f, ScrubFilter) for f in other.filters):
            other.addFilter(ScrubFilter())


def apply(settings: Any, *, verbose: bool = False) -> None:
    """Log as the settings say: ELSHI_LOG_FORMAT, and ELSHI_LOG_LEVEL when it is set (else
    warnings only); everything with `verbose`."""
    level: int | str = logging.WARNING
    if "log_level" in settings.model_fields_set:
        level = settings.log_level
    if verbose:
        level = logging.DEBUG
    configure(level=level, fmt=settings.log_format)
