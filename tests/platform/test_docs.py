"""The docs stay complete: reference pages match the code; every command and setting has help."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from elshi import reference
from elshi.cli import app
from elshi.plugins import KINDS, channels, connectors, hookspecs
from elshi.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("page", sorted(reference.PAGES))
def test_reference_page_is_up_to_date(page: str) -> None:
    committed = (DOCS / "reference" / page).read_text(encoding="utf-8")
    assert committed == reference.PAGES[page](), (
        f"docs/reference/{page} is out of date: run `python -m elshi.reference`"
    )


def test_every_setting_has_help() -> None:
    missing = [n for n, f in Settings.model_fields.items() if not (f.description or "").strip()]
    assert not missing


def _commands(cmd: object, path: str) -> list[tuple[str, object]]:
    sub = getattr(cmd, "commands", None)
    if sub:
        found: list[tuple[str, object]] = []
        for name, child in sub.items():
            found += _commands(child, f"{path} {name}")
        return found
    return [(path, cmd)]


def test_every_command_and_option_has_help() -> None:
    root = typer.main.get_command(app)
    for path, cmd in _commands(root, "elshi"):
        assert (getattr(cmd, "help", "") or "").strip(), f"{path} has no help"
        for p in cmd.params:  # type: ignore[attr-defined]
            if p.param_type_name in ("option", "argument") and p.name != "help":
                assert (getattr(p, "help", "") or "").strip(), f"{path} {p.name} has no help"


def test_every_connector_is_documented() -> None:
    for slug, cls in connectors().items():
        assert (cls.__doc__ or "").strip(), f"connector {slug} has no docstring"
        for name, field in cls.Config.model_fields.items():
            assert (field.description or "").strip(), f"{slug} setting {name} has no description"


def test_docs_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if p.name != "index.md"]
    assert pages
    for page in pages:
        assert f"({page})" in index, f"docs/index.md does not link {page}"


def test_every_channel_is_documented() -> None:
    for slug, cls in channels().items():
        assert (cls.__doc__ or "").strip(), f"channel {slug} has no docstring"
        for model in (cls.Config, cls.Secrets):
            for name, field in model.model_fields.items():
                assert (field.description or "").strip(), f"{slug} setting {name} undocumented"


def test_every_hookspec_is_documented() -> None:
    page = (DOCS / "reference" / "hooks.md").read_text(encoding="utf-8")
    specs = hookspecs()
    assert "elshi_connectors" in specs and "elshi_translators" in specs
    for name, spec in specs.items():
        doc = (spec.__doc__ or "").strip()
        assert doc, f"hook {name} has no docstring"
        assert f"## `{name}()" in page, f"hook {name} is missing from docs/reference/hooks.md"
        assert doc.split("\n")[0] in page, f"docs/reference/hooks.md is out of date for {name}"
        assert name.removeprefix("elshi_") in KINDS, f"hook {name} has no kind in the registry"
