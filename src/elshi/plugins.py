"""The plugin manager: connectors (and later channels, enrichers) register through pluggy hooks."""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

import pluggy

from elshi.settings import Settings

if TYPE_CHECKING:
    from elshi.connectors.base import Connector
    from elshi.consulate.scan import Scanner
    from elshi.nlp.base import Enricher
    from elshi.notify.sms import SmsGateway
    from elshi.speak.channels.base import Channel
    from elshi.speak.service import Translator

hookspec = pluggy.HookspecMarker("elshi")
hookimpl = pluggy.HookimplMarker("elshi")

#: Built-in plugins, registered exactly as a third-party package's entry point would be.
DEFAULT_PLUGINS = (
    "elshi.connectors.rss",
    "elshi.connectors.mastodon",
    "elshi.connectors.bluesky",
    "elshi.connectors.tabular",
    "elshi.connectors.telegram",
    "elshi.connectors.demo",
    "elshi.nlp.enrichers",
    "elshi.consulate.scan",
    "elshi.speak.channels.telegram",
    "elshi.speak.channels.mastodon",
    "elshi.speak.channels.bluesky",
    "elshi.speak.channels.x",
    "elshi.speak.channels.facebook",
    "elshi.speak.channels.web",
    "elshi.speak.channels.email",
    "elshi.notify.sms",
)


class Hookspecs:
    """Hooks a plugin may implement."""

    @hookspec
    def elshi_connectors(self) -> list[type[Connector]]:  # type: ignore[empty-body]
        """Return connector classes this plugin provides."""

    @hookspec
    def elshi_enrichers(self) -> list[type[Enricher]]:  # type: ignore[empty-body]
        """Return enricher classes this plugin provides."""

    @hookspec
    def elshi_virus_scanners(self) -> list[type[Scanner]]:  # type: ignore[empty-body]
        """Return virus scanner classes for uploaded documents."""

    @hookspec
    def elshi_channels(self) -> list[type[Channel]]:  # type: ignore[empty-body]
        """Return publishing channel classes this plugin provides."""

    @hookspec
    def elshi_sms_gateways(self) -> list[type[SmsGateway]]:  # type: ignore[empty-body]
        """Return SMS gateway classes (crisis messages) this plugin provides."""

    @hookspec
    def elshi_translators(self) -> list[type[Translator]]:  # type: ignore[empty-body]
        """Return machine-translation backends this plugin provides (none are built in)."""


class UnknownPlugin(KeyError):
    """No plugin has this slug."""


@cache
def get_manager() -> pluggy.PluginManager:
    """Return the plugin manager with built-ins and installed `elshi` entry points loaded."""
    pm = pluggy.PluginManager("elshi")
    pm.add_hookspecs(Hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    pm.load_setuptools_entrypoints("elshi")
    return pm


def connectors() -> dict[str, type[Connector]]:
    """Return every registered connector class by slug."""
    found: dict[str, type[Connector]] = {}
    for group in get_manager().hook.elshi_connectors():
        for cls in group:
            found[cls.slug] = cls
    return dict(sorted(found.items()))


def get_connector(slug: str) -> Connector:
    """Return an instance of the connector registered under `slug`."""
    try:
        return connectors()[slug]()
    except KeyError:
        known = ", ".join(connectors())
        raise UnknownPlugin(f"no connector {slug!r}; known: {known}") from None


def enrichers() -> dict[str, type[Enricher]]:
    """Return every registered enricher class by slug."""
    found: dict[str, type[Enricher]] = {}
    for group in get_manager().hook.elshi_enrichers():
        for cls in group:
            found[cls.slug] = cls
    return found


def get_enricher(slug: str) -> Enricher:
    """Return an instance of the enricher registered under `slug`."""
    try:
        return enrichers()[slug]()
    except KeyError:
        known = ", ".join(enrichers())
        raise UnknownPlugin(f"no enricher {slug!r}; known: {known}") from None


def virus_scanners() -> dict[str, type[Scanner]]:
    """Return every registered virus scanner class by slug."""
    found: dict[str, type[Scanner]] = {}
    for group in get_manager().hook.elshi_virus_scanners():
        for cls in group:
            found[cls.slug] = cls
    return found


def pick_scanner(settings: Settings) -> Scanner:
    """Return the scanner ELSHI_VIRUS_SCANNER names; `auto` takes the first real one available."""
    found = virus_scanners()
    choice = settings.virus_scanner
    if choice == "auto":
        for slug, cls in found.items():
            if slug != "none" and cls.available(settings):
                return cls(settings)
        choice = "none"
    try:
        return found[choice](settings)
    except KeyError:
        raise UnknownPlugin(
            f"ELSHI_VIRUS_SCANNER: no scanner {choice!r}; known: auto, {', '.join(found)}"
        ) from None


def channels() -> dict[str, type[Channel]]:
    """Return every registered publishing channel class by slug."""
    found: dict[str, type[Channel]] = {}
    for group in get_manager().hook.elshi_channels():
        for cls in group:
            found[cls.slug] = cls
    return dict(sorted(found.items()))


def get_channel(slug: str) -> Channel:
    """Return an instance of the channel registered under `slug`."""
    try:
        return channels()[slug]()
    except KeyError:
        known = ", ".join(channels())
        raise UnknownPlugin(f"no channel {slug!r}; known: {known}") from None


def translators() -> dict[str, type[Translator]]:
    """Return every registered machine-translation backend by slug."""
    found: dict[str, type[Translator]] = {}
    for group in get_manager().hook.elshi_translators():
        for cls in group:
            found[cls.slug] = cls
    return dict(sorted(found.items()))


def sms_gateways() -> dict[str, type[SmsGateway]]:
    """Return every registered SMS gateway class by slug."""
    found: dict[str, type[SmsGateway]] = {}
    for group in get_manager().hook.elshi_sms_gateways():
        for cls in group:
            found[cls.slug] = cls
    return dict(sorted(found.items()))


def get_sms_gateway(slug: str) -> SmsGateway:
    """Return an instance of the SMS gateway registered under `slug`."""
    try:
        return sms_gateways()[slug]()
    except KeyError:
        known = ", ".join(sms_gateways())
        raise UnknownPlugin(
            f"ELSHI_CRISIS_SMS_GATEWAY: no gateway {slug!r}; known: {known}"
        ) from None


def plugin_names() -> list[str]:
    """Return the names of every registered plugin module."""
    return sorted(name for name, _ in get_manager().list_name_plugin())
