"""Parse the search form into a query, with messages a person can act on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from elshi.listen.service import SearchQuery
from elshi.web.bounds import parse_date
from elshi.web.i18n import N_

if TYPE_CHECKING:
    from starlette.datastructures import UploadFile

PAGE_SIZE = 20
MAX_PAGE = 10_000
MAX_QUERY = 500
_CODE = re.compile(r"^[a-z0-9_-]{1,32}$", re.IGNORECASE)

TOO_LONG = N_("The search text is too long (at most 500 characters).")
BAD_SINCE = N_("The start date is not a date: use the form 2026-11-01.")
BAD_UNTIL = N_("The end date is not a date: use the form 2026-11-01.")
DATES_REVERSED = N_("The start date is after the end date.")
BAD_SOURCE = N_("Choose a source from the list.")
BAD_LANG = N_("Choose a language from the list.")
BAD_PLATFORM = N_("Choose a platform from the list.")
BAD_PAGE = N_("The page number must be a whole number from 1 to 10000.")


@dataclass
class SearchForm:
    """The submitted values (echoed back into the form), the query and what was wrong."""

    values: dict[str, str]
    query: SearchQuery
    page: int = 1
    errors: list[str] = field(default_factory=list)

    @property
    def submitted(self) -> bool:
        """Return True when any search field was filled in."""
        return any(v for k, v in self.values.items() if k != "page")


def _date(value: str) -> date | None:
    return parse_date(value)


def parse_search(params: Mapping[str, str]) -> SearchForm:
    """Turn query-string values into a SearchQuery; bad values become messages, not errors."""
    # "language" (of posts), not "lang": ?lang= switches the interface language.
    keys = ("q", "language", "platform", "source", "since", "until", "page")
    values = {k: (params.get(k) or "").strip() for k in keys}
    errors: list[str] = []
    q = values["q"]
    if len(q) > MAX_QUERY:
        errors.append(TOO_LONG)
    lang = values["language"] or None
    if lang and not _CODE.match(lang):
        errors.append(BAD_LANG)
    platform = values["platform"] or None
    if platform and not _CODE.match(platform):
        errors.append(BAD_PLATFORM)
    source_id = None
    if values["source"]:
        if values["source"].isdigit() and len(values["source"]) < 10:
            source_id = int(values["source"])
        else:
            errors.append(BAD_SOURCE)
    since = _date(values["since"]) if values["since"] else None
    if values["since"] and since is None:
        errors.append(BAD_SINCE)
    until = _date(values["until"]) if values["until"] else None
    if values["until"] and until is None:
        errors.append(BAD_UNTIL)
    if since and until and since > until:
        errors.append(DATES_REVERSED)
    page = 1
    if values["page"]:
        digits = values["page"]
        if digits.isdigit() and len(digits) <= 5 and 1 <= int(digits) <= MAX_PAGE:
            page = int(values["page"])
        else:
            errors.append(BAD_PAGE)
    query = SearchQuery(
        q=q or None,
        # The end date is inclusive on the form: search up to the start of the next day.
        since=datetime.combine(since, datetime.min.time(), UTC) if since else None,
        until=datetime.combine(until, datetime.min.time(), UTC) + timedelta(days=1)
        if until
        else None,
        source_id=source_id,
        platform=platform,
        lang=lang,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    return SearchForm(values=values, query=query, page=page, errors=errors)


async def read_upload(file: UploadFile, limit: int) -> bytes:
    """Read at most limit+1 bytes so an oversized file is noticed without reading it all."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await file.read(min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
