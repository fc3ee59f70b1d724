"""The shape of the code: split services still answer as one module, the CLI has no cycle."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

SPLIT = {
    "elshi.speak.service": (
        "writing",
        "approval",
        "channel_accounts",
        "scheduling",
        "reach",
        "rebuttal",
        "subscribers",
    ),
    "elshi.crisis.service": ("area", "broadcasts", "checkins", "welfare"),
}


@pytest.mark.parametrize("service_name", sorted(SPLIT))
def test_split_service_still_answers_every_name(service_name: str) -> None:
    service = importlib.import_module(service_name)
    package = service_name.rsplit(".", 1)[0]
    assert SPLIT[service_name] == service._PARTS
    for part in SPLIT[service_name]:
        module = importlib.import_module(f"{package}.{part}")
        own = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(value) or inspect.isclass(value))
            and value.__module__ == module.__name__
        }
        assert own <= set(module.__all__), f"{part}: add to __all__: {own - set(module.__all__)}"
        for name in module.__all__:
            assert getattr(service, name) is getattr(module, name), f"{service_name}.{name}"
    with pytest.raises(AttributeError):
        _ = service.no_such_name


@pytest.mark.parametrize(
    "module",
    [f"{s.rsplit('.', 1)[0]}.{p}" for s, parts in SPLIT.items() for p in parts]
    + ["elshi.crisis.commands", "elshi.speak.commands", "elshi.cli.common"],
)
def test_each_module_imports_first_on_its_own(module: str) -> None:
    # Each part imports its service; the service finds the parts lazily: no import cycle.
    code = (
        f"import sys, {module}\n"
        "assert 'elshi.cli.root' not in sys.modules, 'importing it loaded every command'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_cli_entry_point_and_module_agree() -> None:
    from elshi import cli
    from elshi.cli import root

    assert cli.app is root.app
    assert cli.main is root.main
