"""Generate docs/reference/*.md from the code: settings, CLI commands, connectors, channels,
roles, the route policy and the plugin hooks.

`python -m elshi.reference` rewrites the files; a test fails when they are out of date, so a
new setting, command or connector cannot land undocumented.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from elshi.settings import Settings


def settings_markdown() -> str:
    """Return the settings reference."""
    lines = [
        "# Settings",
        "",
        "Every setting is an environment variable `ELSHI_<NAME>` or a key in the TOML file named",
        "by `ELSHI_CONFIG` / `elshi --config FILE` (under an `[elshi]` table). The environment",
        "wins over the file. A bad value stops start-up with a message naming the variable.",
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default: Any = field.default
        if field.default_factory is not None:
            default = "./data" if name == "home" else "(computed)"
        ann = getattr(field.annotation, "__name__", None) or str(field.annotation)
        ann = ann.replace("typing.", "").replace("|", "or")
        shown = "" if default in ("", None) else f"`{default}`"
        lines.append(f"| `ELSHI_{name.upper()}` | {ann} | {shown} | {field.description} |")
    return "\n".join(lines) + "\n"


def _walk(cmd: Any, path: list[str], out: list[str]) -> None:
    commands = getattr(cmd, "commands", None)
    if commands:
        # A group that also runs on its own (`elshi reprocess`) is documented as a command.
        if getattr(cmd, "invoke_without_command", False):
            _entry(cmd, path, out)
        for name in sorted(commands):
            _walk(commands[name], [*path, name], out)
        return
    _entry(cmd, path, out)


def _entry(cmd: Any, path: list[str], out: list[str]) -> None:
    out.append(f"## `{' '.join(path)}`")
    out.append("")
    out.append((cmd.help or "").strip().split("\n\n")[0])
    out.append("")
    for p in cmd.params:
        if p.param_type_name == "option":
            flags = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
            out.append(f"- {flags}: {p.help or ''}")
        elif p.param_type_name == "argument":
            helptext = getattr(p, "help", "") or ""
            out.append(f"- `{p.name.upper() if p.name else ''}`: {helptext}")
    out.append("")


def cli_markdown() -> str:
    """Return the CLI reference."""
    from elshi.cli import app

    root = typer.main.get_command(app)
    out = [
        "# Command line",
        "",
        "Exit codes: 0 success; 1 failure; 2 bad usage or bad setting; 3 finished but some",
        "records were quarantined; 4 not found; 5 disk full. Every command answers `--help`.",
        "",
    ]
    _walk(root, ["elshi"], out)
    return "\n".join(out).rstrip() + "\n"


def connectors_markdown() -> str:
    """Return the connectors reference with each one's settings."""
    from elshi.plugins import connectors

    out = [
        "# Connectors",
        "",
        "`elshi plugins` lists them. Use one with `elshi ingest SLUG TARGET` (once) or",
        "`elshi sources add SLUG TARGET --every 15m` (scheduled). Other settings are passed as",
        "`-o key=value`. Only connectors that can be scheduled become sources; the web's",
        "Administration page adds those that fetch from an http(s) address.",
        "",
    ]
    for slug, cls in connectors().items():
        doc = (cls.__doc__ or "").strip().split("\n\n")[0]
        out += [f"## `{slug}`: {cls.title}", "", doc, ""]
        out.append(
            f"Platform `{cls.platform}`; target `{cls.target_field}`; "
            f"{'can be scheduled' if cls.pollable else 'one-off import'}."
        )
        out.append("")
        out += _settings_table(cls.Config)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _settings_table(model: Any) -> list[str]:
    """A plugin's settings (its Config or Secrets model) as a Markdown table."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    out = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or " or ".join(
            str(x.get("type", x.get("$ref", "?"))) for x in prop.get("anyOf", [])
        )
        if "enum" in prop:
            kind = " / ".join(map(str, prop["enum"]))
        default = "required" if name in required else json.dumps(prop.get("default"))
        desc = prop.get("description", "").replace("|", "\\|").replace("\n", " ")
        if prop.get("secret"):
            desc += " Secret: never shown back."
        if prop.get("address"):
            desc += " Fetched from public addresses only (ELSHI_FETCH_ALLOW_PRIVATE)."
        out.append(f"| `{name}` | {kind} | {default} | {desc} |")
    return out


def channels_markdown() -> str:
    """Return the publishing channels reference with each one's settings and credentials."""
    from elshi.plugins import channels

    out = [
        "# Publishing channels",
        "",
        "`elshi plugins` lists them. Add an account with",
        "`elshi channels add SLUG NAME --mission SLUG -o key=value`; the credentials are asked",
        "for without echo (or read as KEY=VALUE lines with `--secrets-stdin`) and stored",
        "encrypted. See [Speak](../speak.md).",
        "",
    ]
    for slug, cls in channels().items():
        doc = " ".join((cls.__doc__ or "").split())
        out += [f"## `{slug}`: {cls.title}", "", doc, ""]
        can = [
            "retries cannot post twice" if cls.retry_safe else "an interrupted try is checked",
            "posts can be edited" if cls.can_edit else "posts cannot be edited",
            "posts can be deleted" if cls.can_delete else "posts cannot be deleted",
        ]
        out += ["; ".join(can).capitalize() + ".", ""]
        if cls.images:
            out += [f"Images: {cls.images}", ""]
        if cls.audience:
            out += [f"Who engages: {cls.audience}", ""]
        out += ["Settings (`-o key=value`):", ""]
        out += _settings_table(cls.Config)
        if cls.Secrets.model_fields:
            out += ["", "Credentials (stored encrypted):", ""]
            out += _settings_table(cls.Secrets)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def roles_markdown() -> str:
    """Return the role model: which role grants which permission, and where it reaches."""
    from elshi.accounts.service import PERMISSIONS, STAFF_ROLES

    out = [
        "# Roles and permissions",
        "",
        "A user holds roles per mission (`elshi users grant EMAIL --role ROLE --mission SLUG`).",
        "A role held at headquarters (`hq`) reaches every mission; a role held in a mission",
        "reaches that mission only. Data of no mission (a mission itself, a change to a",
        "ministry-wide source, a user with no role or a role at headquarters) needs the",
        "permission at headquarters. `citizen` is not a staff role: a citizen has an",
        "e-consulate account of their own and sees only their own data.",
        "Which routes need which permission: [Routes](routes.md).",
        "",
        "Some permissions mean more when held at headquarters: `consulate.act` there also",
        "publishes travel advisories (`admin` or `consular` in the `hq` mission; see",
        "[the e-consulate](../consulate.md#travel-advisories)).",
        "",
        "| permission | " + " | ".join(f"`{r}`" for r in STAFF_ROLES) + " |",
        "|---|" + "---|" * len(STAFF_ROLES),
    ]
    for permission, roles in PERMISSIONS.items():
        cells = " | ".join("yes" if r in roles else "" for r in STAFF_ROLES)
        out.append(f"| `{permission}` | {cells} |")
    return "\n".join(out) + "\n"


def routes_markdown() -> str:
    """Return the route policy table: who may call each route of the web app."""
    from elshi.web.policy import POLICY, SCOPES, WHO

    out = [
        "# Routes and who may call them",
        "",
        "Every route of the web app is declared in `elshi.web.policy` with who may call it;",
        "the app does not start with a route missing there, and a test calls every route as",
        "each role of another mission. Permissions and roles: [Roles](roles.md).",
        "",
        "Who:",
        "",
        *(f"- `{who}`: {text}" for who, text in WHO.items()),
        "",
        "Scope of a staff route:",
        "",
        *(f"- `{scope}`: {text}" for scope, text in SCOPES.items()),
        "",
        "| method | path | who | permission | scope | note |",
        "|---|---|---|---|---|---|",
    ]
    for (method, path), rule in sorted(POLICY.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        permission = " or ".join(f"`{p}`" for p in rule.permissions)
        note = rule.why.replace("|", "\\|")
        out.append(f"| {method} | `{path}` | {rule.who} | {permission} | {rule.scope} | {note} |")
    return "\n".join(out) + "\n"


def hooks_markdown() -> str:
    """Return the plugin hooks reference: each hook, what it returns and the built-ins."""
    import inspect

    from elshi.plugins import DEFAULT_PLUGINS, get_manager, hookspecs

    manager = get_manager()
    out = [
        "# Plugin hooks",
        "",
        "A plugin is a Python module that implements some of these hooks with `hookimpl` from",
        "`elshi.plugins`, registered by an entry point in the group `elshi` of its package",
        "(`[project.entry-points.elshi]` in pyproject.toml). Each hook returns a list of",
        "classes; elshi finds one by its `slug`. The built-ins register the same way.",
        "`elshi plugins` lists what is installed.",
        "",
        "```python",
        "from elshi.plugins import hookimpl",
        "",
        "",
        "@hookimpl",
        "def elshi_connectors():",
        "    return [MyConnector]",
        "```",
        "",
    ]
    for name, spec in hookspecs().items():
        returns = inspect.signature(spec).return_annotation
        doc = inspect.getdoc(spec) or ""
        built_in = sorted(
            cls.slug
            for impl in getattr(manager.hook, name).get_hookimpls()
            if impl.plugin_name in DEFAULT_PLUGINS
            for cls in impl.function()
        )
        out += [f"## `{name}() -> {returns}`", "", *doc.split("\n"), ""]
        shown = ", ".join(f"`{slug}`" for slug in built_in) if built_in else "none"
        out += [f"Built in: {shown}.", ""]
    return "\n".join(out).rstrip() + "\n"


PAGES = {
    "settings.md": settings_markdown,
    "cli.md": cli_markdown,
    "connectors.md": connectors_markdown,
    "channels.md": channels_markdown,
    "roles.md": roles_markdown,
    "routes.md": routes_markdown,
    "hooks.md": hooks_markdown,
}


def main(argv: list[str] | None = None) -> int:
    """Write the reference pages into docs/reference (or the folder given)."""
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else Path("docs/reference")
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in PAGES.items():
        (folder / name).write_text(make(), encoding="utf-8")
        print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
