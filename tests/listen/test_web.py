"""Pages: sign-in with CSRF, kk/ru/en interface, search, security headers, offline API docs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from elshi.accounts import flows
from elshi.accounts.models import AuditEvent
from elshi.accounts.service import Principal
from elshi.app import create_app
from elshi.db import Database
from elshi.demo import load_demo
from elshi.listen import service as listen
from elshi.listen.models import Post
from elshi.settings import Settings
from elshi.web import i18n

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def demo(db: Database, settings: Settings) -> dict[str, Any]:
    return load_demo(db, settings=settings, posts=240)


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, db=db)) as c:
        yield c


def _csrf(client: TestClient, path: str = "/login") -> str:
    page = client.get(path)
    match = CSRF.search(page.text)
    assert match, page.text[:500]
    return match[1]


def _sign_in(client: TestClient, demo: dict[str, Any], next_url: str = "/") -> Any:
    token = _csrf(client)
    return client.post(
        "/login",
        data={
            "email": demo["email"],
            "password": demo["password"],
            "csrf_token": token,
            "next": next_url,
        },
        follow_redirects=False,
    )


def test_login_flow_with_csrf(client: TestClient, demo: dict[str, Any], db: Database) -> None:
    form = {"email": demo["email"], "password": demo["password"], "next": "/sources"}
    missing = client.post("/login", data=form, follow_redirects=False)
    assert missing.status_code == 400
    assert i18n.gettext("kk", "The form has expired. Please try again.") in missing.text
    forged = client.post("/login", data={**form, "csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 400

    token = _csrf(client)
    wrong = client.post(
        "/login",
        data={**form, "password": "not the password", "csrf_token": token},
        follow_redirects=False,
    )
    assert wrong.status_code == 401
    assert "Электрондық пошта немесе құпиясөз қате" in wrong.text
    assert "elshi_session" not in wrong.headers.get("set-cookie", "")

    ok = client.post("/login", data={**form, "csrf_token": token}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/sources"
    cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("elshi_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert "Max-Age=28800" in cookie
    page = client.get("/sources")
    assert page.status_code == 200 and "Demo corpus" in page.text

    # Sign out needs the CSRF token too.
    assert client.post("/logout", data={"csrf_token": "x"}).status_code == 400
    out = client.post("/logout", data={"csrf_token": _csrf(client, "/")}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303
    with db.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-3:] == ["auth.sign_in_failed", "auth.sign_in", "auth.sign_out"]


def test_login_with_totp(client: TestClient, demo: dict[str, Any], db: Database) -> None:
    import pyotp

    with db.session() as s:
        uri = flows.enrol_totp(db=s, actor=Principal.system(), email=demo["email"])
    first = _sign_in(client, demo, "/posts")
    assert first.status_code == 303 and first.headers["location"].startswith("/login/code")
    assert client.get("/", follow_redirects=False).status_code == 303  # not signed in yet
    page = client.get(first.headers["location"])
    assert "Аутентификатор коды" in page.text
    token = CSRF.search(page.text)[1]  # type: ignore[index]
    bad = client.post("/login/code", data={"code": "12", "csrf_token": token, "next": "/posts"})
    assert bad.status_code == 401 and "Код қате" in bad.text
    code = pyotp.parse_uri(uri).now()
    done = client.post(
        "/login/code",
        data={"code": code, "csrf_token": token, "next": "/posts"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/posts"
    assert client.get("/api/me").json()["email"] == demo["email"]


def test_next_never_leaves_the_site(client: TestClient, demo: dict[str, Any]) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = _sign_in(client, demo, target)
        assert r.headers["location"] == "/", target


def test_language_switch(client: TestClient, demo: dict[str, Any]) -> None:
    _sign_in(client, demo)
    kk = client.get("/")
    assert '<html lang="kk">' in kk.text and "Жарияланымдар" in kk.text and "Шолу" in kk.text
    ru = client.get("/posts?lang=ru")
    assert '<html lang="ru">' in ru.text and "Публикации" in ru.text and "Что искать" in ru.text
    assert "elshi_lang=ru" in ru.headers["set-cookie"]
    # The choice sticks in the cookie.
    assert "Источники" in client.get("/sources").text
    en = client.get("/?lang=en")
    assert "Posts by language" in en.text and "Публикации" not in en.text
    # Without a cookie, the browser's Accept-Language decides.
    client.cookies.delete("elshi_lang")
    page = client.get("/", headers={"Accept-Language": "de-DE, ru;q=0.8, en;q=0.5"})
    assert '<html lang="ru">' in page.text
    page = client.get("/", headers={"Accept-Language": "fr"})
    assert '<html lang="kk">' in page.text  # settings.default_language


def test_search_page_finds_demo_posts(
    client: TestClient, demo: dict[str, Any], db: Database
) -> None:
    _sign_in(client, demo)
    with db.session() as s:
        expected, first = listen.search_posts(
            db=s, query=listen.SearchQuery(q="Қазақстан", lang="kk", limit=20)
        )
    assert expected > 20
    page = client.get("/posts", params={"q": "Қазақстан", "language": "kk"})
    assert page.status_code == 200
    summary = re.search(r'id="summary">([^<]+)<', page.text)
    assert summary and summary[1].startswith(f"Табылды: {expected}")
    shown = re.findall(r'<div class="text" dir="auto" lang="kk">(.*?)</div>', page.text, re.S)
    texts = [re.sub(r"</?mark>", "", t) for t in shown]
    assert texts == [p.text for p in first]
    assert all("Қазақстан" in t for t in texts)
    assert all(re.search(r"<mark>Қазақстан[^<]*</mark>", t) for t in shown)  # matches marked
    second = client.get("/posts", params={"q": "Қазақстан", "language": "kk", "page": "2"})
    texts2 = re.findall(r'<div class="text" dir="auto" lang="kk">(.*?)</div>', second.text)
    assert texts2 and len(texts2) <= 20
    assert 'rel="prev"' in second.text
    none = client.get("/posts", params={"q": "несуществующееслово"})
    assert none.status_code == 200 and "Ештеңе табылмады" in none.text


def test_posts_render_right_to_left_and_escaped(
    client: TestClient, demo: dict[str, Any], db: Database
) -> None:
    with db.session() as s:
        s.add_all(
            [
                Post(
                    platform="rss",
                    external_id="ar-1",
                    connector="test",
                    lang="ar",
                    text="سفارة كازاخستان تعلن عن أيام الثقافة",
                    metrics={},
                    extra={},
                ),
                Post(
                    platform="rss",
                    external_id="zh-1",
                    connector="test",
                    lang="zh",
                    text="哈萨克斯坦大使馆举办文化日",
                    metrics={},
                    extra={},
                ),
                Post(
                    platform="web",
                    external_id="x-1",
                    connector="test",
                    lang="en",
                    text="<script>alert('x')</script> Astana",
                    url="javascript:alert(1)",
                    metrics={},
                    extra={},
                ),
            ]
        )
    _sign_in(client, demo)
    ar = client.get("/posts", params={"language": "ar"}).text
    assert '<div class="text" dir="auto" lang="ar">سفارة كازاخستان تعلن عن أيام الثقافة</div>' in ar
    zh = client.get("/posts", params={"language": "zh"}).text
    assert '<div class="text" dir="auto" lang="zh">哈萨克斯坦大使馆举办文化日</div>' in zh
    en = client.get("/posts", params={"platform": "web"}).text
    assert "<script>alert" not in en and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in en
    assert "javascript:" not in en


@pytest.mark.parametrize(
    ("params", "message_id"),
    [
        ({"since": "yesterday"}, "The start date is not a date: use the form 2026-11-01."),
        ({"until": "2026-13-45"}, "The end date is not a date: use the form 2026-11-01."),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "The start date is after the end date."),
        ({"page": "abc"}, "The page number must be a whole number from 1 to 10000."),
        ({"page": "0"}, "The page number must be a whole number from 1 to 10000."),
        ({"source": "'; drop table post"}, "Choose a source from the list."),
        ({"language": "<b>"}, "Choose a language from the list."),
        ({"q": "x" * 501}, "The search text is too long (at most 500 characters)."),
    ],
)
def test_bad_search_input_gives_a_message(
    client: TestClient, demo: dict[str, Any], params: dict[str, str], message_id: str
) -> None:
    _sign_in(client, demo)
    page = client.get("/posts", params=params, headers={"Accept-Language": "ru"})
    assert page.status_code == 400
    assert i18n.gettext("ru", message_id) in page.text
    assert i18n.gettext("ru", message_id) != message_id


def test_date_range_filters(client: TestClient, demo: dict[str, Any], db: Database) -> None:
    _sign_in(client, demo)
    page = client.get("/posts", params={"since": "2026-10-20", "until": "2026-10-20"})
    assert page.status_code == 200
    times = re.findall(r'<time datetime="([^"]+)"', page.text)
    assert times and all(t.startswith("2026-10-20") for t in times)


def test_security_headers(client: TestClient, demo: dict[str, Any]) -> None:
    for path in ("/login", "/api/posts", "/health", "/static/elshi.css"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
        assert r.headers["x-frame-options"] == "DENY"
    assert client.get("/login").headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in client.get("/login").headers


def test_https_sets_secure_cookies(settings: Settings, db: Database, demo: dict[str, Any]) -> None:
    with TestClient(create_app(settings, db=db), base_url="https://testserver") as c:
        page = c.get("/login")
        assert "Secure" in page.headers["set-cookie"]
        assert page.headers["strict-transport-security"].startswith("max-age=")
        r = _sign_in(c, demo)
        session = next(x for x in r.headers.get_list("set-cookie") if x.startswith("elshi_session"))
        assert "Secure" in session


def test_api_docs_work_offline(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page.text)
    assert "<script>" not in page.text  # no inline script: the page keeps its CSP
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', page.text)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 100, asset
    spec = client.get("/api/openapi.json").json()
    posts = spec["paths"]["/api/posts"]["get"]
    names = {p["name"] for p in posts["parameters"] if p["in"] == "query"}
    assert {
        "q",
        "since",
        "until",
        "source_id",
        "platform",
        "lang",
        "author",
        "limit",
        "offset",
    } <= names
    assert posts["security"] == [{"HTTPBearer": []}]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_catalogs_are_complete() -> None:
    extracted = {str(m.id) for m in i18n.extract() if m.id}
    assert "Staff sign-in" in extracted and "Choose a source from the list." in extracted
    for lang in i18n.LANGUAGES:
        catalog = i18n.read_catalog(lang)
        ids = {str(m.id) for m in catalog if m.id}
        assert extracted <= ids, f"{lang}: run `make i18n`: {sorted(extracted - ids)[:5]}"
        assert i18n.untranslated(catalog) == [], lang
    for lang in ("kk", "ru"):
        differ = [m for m in i18n.read_catalog(lang) if m.id and m.string != m.id]
        assert len(differ) > len(extracted) * 0.9, f"{lang} looks untranslated"


def test_accept_language_parsing() -> None:
    assert i18n.parse_accept_language("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7") == [
        "ru",
        "ru",
        "en",
        "en",
    ]
    assert i18n.parse_accept_language("en;q=0.1, kk") == ["kk", "en"]
    assert i18n.parse_accept_language("*;q=0.5, fr;q=0") == []
    assert i18n.pick_language(query="xx", cookie="ru", accept="en", default="kk") == "ru"
    assert i18n.pick_language(query=None, cookie=None, accept="de, en", default="kk") == "en"


def test_unsafe_api_calls_from_a_browser_need_the_csrf_header(
    settings: Settings, db: Database, demo: dict[str, Any]
) -> None:
    from fastapi import Depends

    from elshi.web.deps import require_staff

    app = create_app(settings, db=db)

    @app.post("/api/echo", dependencies=[Depends(require_staff)])
    def echo() -> dict[str, bool]:
        return {"ok": True}

    with db.session() as s:
        token = flows.issue_token(
            db=s, actor=Principal.system(), email=demo["email"], scope="write"
        )
    with TestClient(app) as c:
        assert c.post("/api/echo").status_code == 401
        _sign_in(c, demo)
        refused = c.post("/api/echo")
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
        header = {"X-CSRF-Token": _csrf(c, "/")}
        assert c.post("/api/echo", headers=header).json() == {"ok": True}
        c.cookies.clear()
        assert c.post("/api/echo", headers={"Authorization": f"Bearer {token}"}).status_code == 200
