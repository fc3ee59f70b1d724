"""One registry for every kind of plugin: all(kind), get(kind, slug) and their short names."""

from __future__ import annotations

import pytest

from elshi import plugins
from elshi.connectors.base import Connector
from elshi.speak.channels.base import Channel


def test_every_hook_has_a_kind_and_every_kind_a_hook() -> None:
    hooks = {name.removeprefix("elshi_") for name in plugins.hookspecs()}
    assert hooks == set(plugins.KINDS)


def test_all_and_get_find_the_built_ins() -> None:
    connectors = plugins.all("connectors")
    assert "rss" in connectors and issubclass(connectors["rss"], Connector)
    assert list(connectors) == sorted(connectors)
    assert plugins.connectors() == connectors
    assert plugins.get("channels", "email") is plugins.channels()["email"]
    assert issubclass(plugins.get("channels", "email"), Channel)
    assert isinstance(plugins.get_connector("rss"), connectors["rss"])
    assert plugins.translators() == {}


def test_enrichers_keep_the_order_they_registered_in() -> None:
    # The pipeline orders enrichers by `requires`; ties keep the registration order.
    enrichers = list(plugins.all("enrichers"))
    assert enrichers[0] == "language"
    assert enrichers == list(plugins.enrichers())


def test_an_unknown_slug_names_the_known_ones() -> None:
    with pytest.raises(plugins.UnknownPlugin, match=r"no channel 'nope'; known: .*email"):
        plugins.get("channels", "nope")
    with pytest.raises(plugins.UnknownPlugin, match=r"no connector 'nope'; known: .*rss"):
        plugins.get_connector("nope")
    with pytest.raises(
        plugins.UnknownPlugin, match=r"^.ELSHI_CRISIS_SMS_GATEWAY: no gateway 'nope'; known: "
    ):
        plugins.get_sms_gateway("nope")
    with pytest.raises(plugins.UnknownPlugin, match="no kind of plugin 'widgets'"):
        plugins.all("widgets")
