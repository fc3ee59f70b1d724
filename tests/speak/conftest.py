"""Fixtures shared by the Speak tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.speak.platforms import PlatformServer


@pytest.fixture
def platforms() -> Iterator[PlatformServer]:
    """A loopback server that plays every platform the channels talk to."""
    server = PlatformServer().start()
    yield server
    server.stop()
