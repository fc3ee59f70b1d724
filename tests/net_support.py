"""Test servers run on 127.0.0.1, which elshi refuses to fetch from unless an operator allows it."""

from __future__ import annotations

import pytest

from elshi.settings import Settings

LOOPBACK = "127.0.0.1/32"


def allow_loopback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, *, push: bool = False
) -> Settings:
    """Allow 127.0.0.1 as an operator allows an intranet range (ELSHI_FETCH_ALLOW_PRIVATE).

    The settings object serves code called in-process; the environment serves the CLI, which
    loads its own settings. With push=True, 127.0.0.1 is also a known push service.
    """
    monkeypatch.setenv("ELSHI_FETCH_ALLOW_PRIVATE", LOOPBACK)
    settings.fetch_allow_private = LOOPBACK
    if push:
        hosts = f"{settings.push_hosts}, 127.0.0.1"
        monkeypatch.setenv("ELSHI_PUSH_HOSTS", hosts)
        settings.push_hosts = hosts
    return settings
