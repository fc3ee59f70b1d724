"""Fixtures of the listen tests: connectors, watches, alerts, digests, forecasts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from elshi.settings import Settings


@pytest.fixture
def fetch_ctx(settings: Settings) -> Iterator[Any]:
    """A FetchContext for connector tests."""
    from elshi.connectors.base import FetchContext

    ctx = FetchContext(settings=settings)
    yield ctx
    ctx.close()
