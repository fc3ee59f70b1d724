"""No input makes elshi answer with a server error.

Schemathesis generates requests for every operation of /api/openapi.json, valid ones and ones
the schema forbids, and sends them to the app in-process, with the API token of a
headquarters admin and of a Paris analyst.
Hypothesis fills the fields of the main forms (which are not in the schema) with arbitrary
text and numbers. Both are bounded (25 examples an operation, derandomized) so the run is the
same every time and short.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from elshi.app import create_app
from elshi.db import Database
from tests.conftest import BACKEND, PG_ADMIN
from tests.security.test_security_routes import OPEN_ELSEWHERE, _csrf, sign_in
from tests.security.world import PASSWORD, Template, template

#: 25 examples an operation, the same ones every run, not shrunk (a failure shows the input
#: that failed; shrinking it would cost more than the rest of the run).
#: How the fuzz runs appear in OPEN_ELSEWHERE: the database decides which integers are too big.
FUZZ = f"fuzz-{BACKEND}"
EXAMPLES = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzz_world(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, pg_database: str | None
) -> Iterator[tuple[Template, Any]]:
    """The security matrix's world, one copy for the whole module, and its app."""
    folder = tmp_path_factory.mktemp("fuzz")
    with (
        template(folder, backend=BACKEND, sqlite_template=sqlite_template, pg_admin=PG_ADMIN) as t,
        t.copy(folder / "copy") as app_settings,
    ):
        database = Database(app_settings)
        try:
            yield t, create_app(app_settings, db=database)
        finally:
            database.dispose()


def test_api_operations_answer_no_server_error(fuzz_world: tuple[Template, Any]) -> None:
    """Every operation of the schema, as the headquarters admin and as a Paris analyst."""
    t, app = fuzz_world
    api = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    failures: dict[tuple[str, str, str], str] = {}
    operations = 0
    for result in api.get_all_operations():
        assert isinstance(result, Ok), f"the schema has an invalid operation: {result}"
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @EXAMPLES
            @given(case=operation.as_strategy(mode))
            def call(case: Any) -> None:
                for who in ("hq_admin", "analyst"):
                    token = t.world.tokens[who]
                    response = case.call(headers={"Authorization": f"Bearer {token}"})
                    case.validate_response(response, checks=[not_a_server_error])

            try:
                call()
            except Unsatisfiable:
                continue  # no parameters: nothing the schema forbids
            except Exception as exc:  # collect every operation's failure, report them all
                key = (operation.method.upper(), operation.path, FUZZ)
                failures[key] = f"{mode.value} input: {type(exc).__name__}: {exc}"[:600]
                break
    assert operations >= 15, f"only {operations} operations in the schema"
    report(failures)


def report(failures: dict[tuple[str, str, str], str]) -> None:
    """Fail on failures not listed in OPEN_ELSEWHERE, and on listed ones that pass now."""
    expected = {k for k in OPEN_ELSEWHERE if k[2] == FUZZ}
    lines = [
        f"{m} {p}: {why}"
        for (m, p, c), why in sorted(failures.items())
        if (m, p, c) not in expected
    ]
    lines += [
        f"{m} {p}: listed in OPEN_ELSEWHERE but passes now"
        for m, p, c in sorted(expected - set(failures))
    ]
    assert not lines, "\n\n".join(lines)


# ---------------------------------------------------------------------------- forms

#: Values a person might type, or an attacker might send: text, numbers, dates, JSON.
VALUE = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "99999999999999999999999",
            "1e309",
            "NaN",
            "2026-02-30",
            "9999-12-31",
            "25:61",
            "{}",
            "[]",
            '{"url": "file:///etc/passwd"}',
            "berlin",
            "hq",
            "admin",
        ]
    ),
)

#: Representative forms: who submits, the path ({watch}: a watch list), and for each field a
#: valid value; Hypothesis keeps some and replaces the others, so input gets past the first
#: check as well as failing it.
FORMS: dict[str, tuple[str, str, dict[str, str]]] = {
    "admin sources": (
        "hq_admin",
        "/admin/sources",
        {
            "connector": "rss",
            "name": "Feed",
            "config": '{"url": "https://example.org/feed"}',
            "every": "15",
            "mission": "{paris}",
        },
    ),
    "admin users": (
        "hq_admin",
        "/admin/users",
        {
            "email": "new@mfa.example",
            "name": "New",
            "password": PASSWORD,
            "role": "analyst",
            "mission": "paris",
        },
    ),
    "admin missions": (
        "hq_admin",
        "/admin/missions",
        {"slug": "rome", "name": "Rome", "kind": "embassy", "country": "IT"},
    ),
    "speak new statement": (
        "hq_admin",
        "/speak/new",
        {
            "mission_id": "{paris}",
            "title": "Title",
            "lang": "en",
            "headline": "",
            "text": "Text",
            "urgent": "",
            "narrative_id": "",
        },
    ),
    "crisis create": (
        "hq_admin",
        "/crisis",
        {
            "mission_id": "{paris}",
            "title": "Flood",
            "countries": "FR",
            "cities": "Paris",
            "polygon": "",
            "circle": "",
            "audience": "present",
            "text_en": "Stay inside.",
            "sms_en": "",
            "action": "preview",
        },
    ),
    "watch save": (
        "hq_admin",
        "/watch-save",
        {
            "watch_id": "",
            "mission_id": "{paris}",
            "name": "Watch",
            "terms": "treaty | договор",
            "context_terms": "",
            "focus_entity": "country:KZ",
        },
    ),
    "alert rule": (
        "hq_admin",
        "/watch/{watch}/alerts",
        {
            "kind": "volume_spike",
            "name": "Rule",
            "window_hours": "24",
            "threshold": "3",
            "min_count": "5",
            "baseline_days": "14",
            "terms": "",
            "source_id": "",
            "silent_hours": "",
            "emails": "",
            "webhook": "",
            "cooldown": "360",
        },
    ),
    "consulate signup": (
        "anonymous",
        "/consulate/signup",
        {"email": "new@example.org", "name": "New", "phone": "", "password": PASSWORD},
    ),
    "consulate login": (
        "anonymous",
        "/consulate/login",
        {"email": "paris-citizen@example.org", "password": "not the password", "next": ""},
    ),
    "consulate stay": (
        "citizen",
        "/consulate/stays/new",
        {
            "mission_id": "{paris}",
            "country_code": "FR",
            "city": "Paris",
            "address": "",
            "arrive_on": "{day}",
            "leave_on": "{day}",
            "phone": "",
            "companion_0_name": "",
        },
    ),
}


@pytest.fixture(scope="module")
def form_clients(fuzz_world: tuple[Template, Any]) -> Iterator[dict[str, tuple[TestClient, str]]]:
    """A signed-in client and its form token for each kind of sender."""
    t, app = fuzz_world
    w = t.world
    clients: dict[str, tuple[TestClient, str]] = {}
    with (
        TestClient(app, raise_server_exceptions=False) as admin,
        TestClient(app, raise_server_exceptions=False) as anonymous,
        TestClient(app, raise_server_exceptions=False) as citizen,
    ):
        clients["hq_admin"] = (admin, _staff_token(admin, w.hq_admin))
        clients["anonymous"] = (anonymous, sign_in(anonymous, w, "anonymous"))
        clients["citizen"] = (citizen, sign_in(citizen, w, "citizen"))
        yield clients


def _staff_token(client: TestClient, email: str) -> str:
    r = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(client, "/login")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:200]
    return _csrf(client, "/account")


@pytest.mark.parametrize("form", sorted(FORMS))
def test_forms_answer_no_server_error(
    form: str,
    fuzz_world: tuple[Template, Any],
    form_clients: dict[str, tuple[TestClient, str]],
) -> None:
    who, path, fields = FORMS[form]
    client, token = form_clients[who]
    w = fuzz_world[0].world
    known = {"paris": str(w.paris), "day": w.b["slot_day"], "watch": str(w.b["watch"])}

    def fill(text: str) -> str:
        for name, value in known.items():
            text = text.replace("{" + name + "}", value)
        return text

    url = fill(path)
    valid = {name: fill(value) for name, value in fields.items()}

    @EXAMPLES
    @given(st.fixed_dictionaries({n: st.just(v) | VALUE for n, v in valid.items()}))
    def submit(values: dict[str, str]) -> None:
        response = client.post(url, data={"csrf_token": token, **values}, follow_redirects=False)
        assert response.status_code < 500, f"{form}: {values!r} -> {response.status_code}"

    submit()
