"""Links elshi sends (e-mails, check-in messages, feeds) follow the port it runs on."""

from __future__ import annotations

from pathlib import Path

import pytest

from elshi.consulate import flows as consulate_flows
from elshi.crisis.service import checkin_url
from elshi.settings import Settings


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(home=tmp_path, **values)  # type: ignore[arg-type]


def test_links_follow_the_port_when_no_public_url_is_set(tmp_path: Path) -> None:
    s = _settings(tmp_path, port=8101)
    assert s.base_url == "http://127.0.0.1:8101"
    assert consulate_flows._link(s, "/consulate/verify", token="t").startswith(
        "http://127.0.0.1:8101/consulate/verify?token=t"
    )
    link = checkin_url(base_url=s.base_url, key=b"k" * 32, crisis_id=1, recipient_id=2)
    assert link.startswith("http://127.0.0.1:8101/")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "http://127.0.0.1:9000"),
        ("::", "http://127.0.0.1:9000"),
        ("10.1.2.3", "http://10.1.2.3:9000"),
        ("::1", "http://[::1]:9000"),
    ],
)
def test_a_server_on_every_address_links_to_this_machine(
    tmp_path: Path, host: str, expected: str
) -> None:
    assert _settings(tmp_path, host=host, port=9000).base_url == expected


def test_a_set_public_url_wins_over_the_port(tmp_path: Path) -> None:
    s = _settings(tmp_path, port=8101, public_url="https://elshi.mfa.example/")
    assert s.base_url == "https://elshi.mfa.example"
    assert consulate_flows._link(s, "/consulate/home") == "https://elshi.mfa.example/consulate/home"


def test_the_cli_port_reaches_the_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from elshi.cli.common import get_settings

    monkeypatch.setenv("ELSHI_HOME", str(tmp_path))
    monkeypatch.delenv("ELSHI_PUBLIC_URL", raising=False)
    assert get_settings(port=8101).base_url == "http://127.0.0.1:8101"
