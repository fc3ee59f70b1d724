"""The plugin manager: connectors, enrichers, scanners, channels, SMS gateways and translators
register through pluggy hooks, built-ins exactly as an installed package would.

One registry serves every kind: `all(kind)` returns the classes of a hook by slug, `get(kind,
slug)` one of them; `connectors()`, `get_channel(slug)` and the like are short names for them.
docs/reference/hooks.md is generated from the hook specifications below.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING, Any

import pluggy

from elshi.settings import Settings

if TYPE_CHECKING:
    from elshi.connectors.base import Connector
    from elshi.consulate.scan import Scanner
    from elshi.nlp.base import Enricher
    from elshi.notify.sms import SmsGateway
    from elshi.speak.channels.base import Channel
    from elshi.speak.translation import Translator

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
    """Hooks a plugin may implement. Each returns a list of classes, found by their `slug`.

    The first paragraph of each docstring is what docs/reference/hooks.md says of the hook;
    the rest names the base class and what a subclass provides.
    """

    @hookspec
    def elshi_connectors(self) -> list[type[Connector]]:  # type: ignore[empty-body]
        """Return connector classes this plugin provides: the source types Listen reads.

        Subclass `elshi.connectors.base.Connector`: `slug`, `title`, `platform`, a pydantic
        `Config`, `fetch` (raw records from the cursor on) and `to_post` (one record as a post).
        The service handles dedupe, cursors, quarantine, storage and scheduling.
        """

    @hookspec
    def elshi_enrichers(self) -> list[type[Enricher]]:  # type: ignore[empty-body]
        """Return enricher classes this plugin provides: what is learnt from each new post.

        Subclass `elshi.nlp.base.Enricher`: `slug`, `title`, `version`, `requires` (slugs that
        must run first) and `enrich_batch` (annotations for a batch of posts). Set
        `queued_apart` for slow work (narratives) that runs as a job of its own.
        """

    @hookspec
    def elshi_virus_scanners(self) -> list[type[Scanner]]:  # type: ignore[empty-body]
        """Return virus scanner classes for documents citizens upload to the e-consulate.

        Subclass `elshi.consulate.scan.Scanner`: `slug`, `title`, `available(settings)` and
        `scan(data)`. ELSHI_VIRUS_SCANNER picks one; `auto` takes the first available.
        """

    @hookspec
    def elshi_channels(self) -> list[type[Channel]]:  # type: ignore[empty-body]
        """Return publishing channel classes this plugin provides: where Speak publishes.

        Subclass `elshi.speak.channels.base.Channel`: `slug`, `title`, pydantic `Config` and
        `Secrets` (stored encrypted), `publish` and, if the platform allows, edit, delete and
        metrics. See [Publishing channels](channels.md).
        """

    @hookspec
    def elshi_sms_gateways(self) -> list[type[SmsGateway]]:  # type: ignore[empty-body]
        """Return SMS gateway classes this plugin provides: how crisis messages reach phones.

        Subclass `elshi.crisis.sms.SmsGateway`: `slug`, `title` and `send` (one SMS; returns
        the gateway's message id). ELSHI_CRISIS_SMS_GATEWAY picks one.
        """

    @hookspec
    def elshi_translators(self) -> list[type[Translator]]:  # type: ignore[empty-body]
        """Return machine-translation backends this plugin provides (none are built in).

        Subclass `elshi.speak.translation.Translator`: `slug`, `title` and `translate(text,
        source=..., target=...)`. A translator drafts with it; a person still approves.
        """


def hookspecs() -> dict[str, Any]:
    """Return every hook specification by name, in the order declared."""
    return {name: fn for name, fn in vars(Hookspecs).items() if hasattr(fn, "elshi_spec")}


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


#: Each kind (its hook without "elshi_"): what one is called in messages, and whether `all`
#: sorts by slug (False keeps the order plugins registered in, which decides: enrichers run in
#: it and the first available scanner is taken).
KINDS: dict[str, tuple[str, bool]] = {
    "connectors": ("connector", True),
    "enrichers": ("enricher", False),
    "virus_scanners": ("scanner", False),
    "channels": ("channel", True),
    "sms_gateways": ("gateway", True),
    "translators": ("translator", True),
}


def all(kind: str) -> dict[str, type[Any]]:
    """Return every registered class of one kind ("connectors", "channels", ...) by slug."""
    if kind not in KINDS:
        raise UnknownPlugin(f"no kind of plugin {kind!r}; known: {', '.join(KINDS)}")
    found: dict[str, type[Any]] = {}
    for group in getattr(get_manager().hook, f"elshi_{kind}")():
        for cls in group:
            found[cls.slug] = cls
    return dict(sorted(found.items())) if KINDS[kind][1] else found


def get(kind: str, slug: str) -> type[Any]:
    """Return the class of one kind registered under `slug`; UnknownPlugin names the known."""
    found = all(kind)
    try:
        return found[slug]
    except KeyError:
        known = ", ".join(found)
        raise UnknownPlugin(f"no {KINDS[kind][0]} {slug!r}; known: {known}") from None


def connectors() -> dict[str, type[Connector]]:
    """Return every registered connector class by slug."""
    return all("connectors")


def get_connector(slug: str) -> Connector:
    """Return an instance of the connector registered under `slug`."""
    return get("connectors", slug)()


def enrichers() -> dict[str, type[Enricher]]:
    """Return every registered enricher class by slug, in the order plugins registered."""
    return all("enrichers")


def get_enricher(slug: str) -> Enricher:
    """Return an instance of the enricher registered under `slug`."""
    return get("enrichers", slug)()


def virus_scanners() -> dict[str, type[Scanner]]:
    """Return every registered virus scanner class by slug, in the order plugins registered."""
    return all("virus_scanners")


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
    return all("channels")


def get_channel(slug: str) -> Channel:
    """Return an instance of the channel registered under `slug`."""
    return get("channels", slug)()


def translators() -> dict[str, type[Translator]]:
    """Return every registered machine-translation backend by slug."""
    return all("translators")


def sms_gateways() -> dict[str, type[SmsGateway]]:
    """Return every registered SMS gateway class by slug."""
    return all("sms_gateways")


def get_sms_gateway(slug: str) -> SmsGateway:
    """Return an instance of the SMS gateway registered under `slug`."""
    try:
        return get("sms_gateways", slug)()
    except UnknownPlugin as exc:
        raise UnknownPlugin(f"ELSHI_CRISIS_SMS_GATEWAY: {exc.args[0]}") from None


def plugin_names() -> list[str]:
    """Return the names of every registered plugin module."""
    return sorted(name for name, _ in get_manager().list_name_plugin())
