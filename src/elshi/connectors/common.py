"""What several connectors share: access tokens, HTTP errors with hints, JSON lines."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from elshi.connectors.base import BadRecord

#: Bytes (or characters) of an unreadable line kept with its quarantine entry.
RAW_LIMIT = 2000


def env_token(value: str, error: type[Exception]) -> str:
    """Return an access token, reading "env:NAME" from the environment variable NAME.

    Keeping "env:NAME" in the source config keeps the secret itself out of the database.
    """
    if not value.startswith("env:"):
        return value
    name = value[4:].strip()
    token = os.environ.get(name, "").strip()
    if not token:
        raise error(f"the access token variable {name} is not set")
    return token


def json_headers(token: str | None, error: type[Exception]) -> dict[str, str]:
    """Return the headers of a JSON API request, with a Bearer token when one is set."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {env_token(token, error)}"
    return headers


def http_get(
    client: httpx.Client,
    url: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    error: type[Exception],
    hints: Mapping[int, str],
    detail_keys: tuple[str, ...] = ("error",),
) -> httpx.Response:
    """GET `url`; raise `error` naming the host, the status, the server's words and a hint.

    The server's words are the `detail_keys` of a JSON object body, joined by " - ".
    """
    parts = urlsplit(url)
    try:
        resp = client.get(url, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise error(f"cannot reach {parts.netloc}: {exc}") from exc
    if resp.status_code < 400:
        return resp
    try:
        body = resp.json()
    except ValueError:
        body = None
    detail = ""
    if isinstance(body, dict) and any(body.get(k) for k in detail_keys):
        detail = ": " + " - ".join(str(body[k]) for k in detail_keys if body.get(k))
    hint = hints.get(resp.status_code) or (
        "server error; try again later" if resp.status_code >= 500 else "request refused"
    )
    raise error(f"HTTP {resp.status_code} from {parts.netloc}{parts.path}{detail} ({hint})")


def json_line(line: str | bytes, location: str, origin: str) -> Any:
    """Decode one line of JSON, or return a BadRecord saying why it cannot be read."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as exc:
        raw = line[:RAW_LIMIT].decode("utf-8", "replace") if isinstance(line, bytes) else None
        return BadRecord(location, f"not UTF-8: {exc.reason} at byte {exc.start}", raw, origin)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"bad JSON: {exc.msg} at column {exc.colno}"
        return BadRecord(location, reason, text[:RAW_LIMIT], origin)
    except RecursionError:
        return BadRecord(location, "bad JSON: nested too deeply", text[:RAW_LIMIT], origin)
