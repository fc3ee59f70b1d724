"""Loopback stand-ins for the platforms elshi publishes to.

Each follows its platform's documented request and response formats (paths, headers, JSON
bodies, error shapes, rate-limit headers): Telegram Bot API and the t.me/s web preview,
Mastodon statuses API (with Idempotency-Key), Bluesky AT Protocol XRPC, X API v2 and the
Facebook Graph API. The server keeps every post it accepted (`posts[platform]`), so a test
can check that nothing was posted twice. `fail(platform, kind)` makes the next publish
fail: "expired", "429", "500", or "hold:SECONDS" (accept the post, answer late).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import regex

TOKENS = {
    "telegram": "123456:TEST-bot-token",
    "mastodon": "mastodon-token",
    "bluesky": "app-pass-word-1234",
    "x": "x-user-token",
    "facebook": "fb-page-token",
    "sms": "sms-auth-token",
}
BSKY_DID = "did:plc:testkazembassy"
TG_USERNAME = "kzembassy_test"


def _graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


class PlatformServer:
    """A threaded HTTP server on 127.0.0.1 serving every platform under its own prefix."""

    def __init__(self) -> None:
        self.posts: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.requests: list[tuple[str, str, str]] = []
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.metrics: dict[str, dict[str, int]] = {}
        self.expired: set[str] = set()
        self.lock = threading.Lock()
        self.idempotency: dict[tuple[str, str], dict[str, Any]] = {}
        self.sessions: dict[str, str] = {}
        self.counter = 1000
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> PlatformServer:
        """Start serving in a thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, platform: str, kind: str) -> None:
        """Make the next publish on a platform fail this way."""
        with self.lock:
            self.faults[platform].append(kind)

    def live(self, platform: str) -> list[dict[str, Any]]:
        """Return the posts on a platform that were not deleted."""
        return [p for p in self.posts[platform] if not p.get("deleted")]

    def next_id(self) -> int:
        """Return a fresh numeric id."""
        with self.lock:
            self.counter += 1
            return self.counter

    def set_metrics(self, external_key: str, **values: int) -> None:
        """Set the engagement numbers served for one post."""
        self.metrics[external_key] = values

    # account configs pointing at this server -------------------------------------------

    def account(self, channel: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (config, secrets) for a channel account on this server."""
        base = self.url
        return {
            "telegram": (
                {
                    "chat_id": f"@{TG_USERNAME}",
                    "api_base": f"{base}/telegram",
                    "preview_base": f"{base}/tme",
                },
                {"bot_token": TOKENS["telegram"]},
            ),
            "mastodon": (
                {"base_url": f"{base}/mastodon", "max_characters": 500},
                {"access_token": TOKENS["mastodon"]},
            ),
            "bluesky": (
                {"handle": "kazembassy.test", "service": f"{base}/bluesky"},
                {"app_password": TOKENS["bluesky"]},
            ),
            "x": (
                {"username": "KazEmbassyTest", "user_id": "42", "api_base": f"{base}/x"},
                {"access_token": TOKENS["x"]},
            ),
            "facebook": (
                {"page_id": "1001", "graph_base": f"{base}/facebook/v21.0"},
                {"page_token": TOKENS["facebook"]},
            ),
        }[channel]


def _handler(server: PlatformServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        # -- plumbing ------------------------------------------------------------------

        def _body(self) -> tuple[dict[str, Any], bytes]:
            n = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(n) if n else b""
            ctype = self.headers.get("content-type", "")
            if "json" in ctype and raw:
                return json.loads(raw), raw
            if raw:
                return {k: v[0] for k, v in parse_qs(raw.decode()).items()}, raw
            return {}, raw

        def _send(
            self,
            status: int,
            body: Any,
            headers: dict[str, str] | None = None,
            ctype: str = "application/json; charset=utf-8",
        ) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            try:
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client was killed while the server held its answer

        def _fault(self, platform: str) -> str | None:
            with server.lock:
                queue = server.faults[platform]
                return queue.pop(0) if queue else None

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            body, _ = self._body() if method in ("POST", "PUT", "DELETE") else ({}, b"")
            path = parts.path
            server.requests.append((method, path, self.headers.get("authorization", "")))
            platform = path.strip("/").split("/", 1)[0]
            handler = getattr(self, f"_{platform}", None)
            if handler is None:
                self._send(404, {"error": "not found"})
                return
            handler(method, path[len(platform) + 1 :], query, body)

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def _hold(self, fault: str | None) -> None:
            if fault and fault.startswith("hold:"):
                time.sleep(float(fault.split(":", 1)[1]))

        # -- Telegram Bot API (https://core.telegram.org/bots/api) ------------------------

        def _telegram(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            _, _, rest = path.partition("/bot")
            token, _, api_method = rest.partition("/")
            if token != TOKENS["telegram"] or "telegram" in server.expired:
                self._send(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return
            chat = {"id": -1001234567890, "title": "Embassy", "username": TG_USERNAME}
            chat["type"] = "channel"
            if api_method == "sendMessage":
                fault = self._fault("telegram")
                if fault == "expired":
                    self._send(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                    return
                if fault == "429":
                    self._send(
                        429,
                        {
                            "ok": False,
                            "error_code": 429,
                            "description": "Too Many Requests: retry after 7",
                            "parameters": {"retry_after": 7},
                        },
                    )
                    return
                if fault == "500":
                    self._send(
                        500,
                        {"ok": False, "error_code": 500, "description": "Internal Server Error"},
                    )
                    return
                text = str(body.get("text", ""))
                if len(text.encode("utf-16-le")) // 2 > 4096:
                    self._send(
                        400,
                        {
                            "ok": False,
                            "error_code": 400,
                            "description": "Bad Request: message is too long",
                        },
                    )
                    return
                mid = server.next_id()
                msg = {
                    "message_id": mid,
                    "sender_chat": chat,
                    "chat": chat,
                    "date": int(time.time()),
                    "text": text,
                }
                server.posts["telegram"].append(
                    {"id": str(mid), "text": text, "chat_id": str(body.get("chat_id", ""))}
                )
                self._hold(fault)
                self._send(200, {"ok": True, "result": msg})
            elif api_method == "editMessageText":
                for p in server.posts["telegram"]:
                    if p["id"] == str(body.get("message_id")):
                        p["text"] = body["text"]
                        self._send(200, {"ok": True, "result": {"message_id": int(p["id"])}})
                        return
                self._send(
                    400,
                    {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: message to edit not found",
                    },
                )
            elif api_method == "deleteMessage":
                for p in server.posts["telegram"]:
                    if p["id"] == str(body.get("message_id")):
                        p["deleted"] = True
                self._send(200, {"ok": True, "result": True})
            else:
                self._send(404, {"ok": False, "error_code": 404, "description": "Not Found"})

        # -- SMS gateway, Twilio Messages API format
        #    (https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource)

        def _sms(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            import base64

            parts = path.strip("/").split("/")
            # /2010-04-01/Accounts/{AccountSid}/Messages.json
            if len(parts) != 4 or parts[1] != "Accounts" or parts[3] != "Messages.json":
                self._send(404, {"code": 20404, "message": "not found", "status": 404})
                return
            account = parts[2]
            expected = "Basic " + base64.b64encode(f"{account}:{TOKENS['sms']}".encode()).decode()
            if self.headers.get("authorization") != expected:
                self._send(401, {"code": 20003, "message": "Authenticate", "status": 401})
                return
            if not body.get("To") or not body.get("Body"):
                self._send(
                    400,
                    {"code": 21604, "message": "A 'To' phone number is required.", "status": 400},
                )
                return
            key = self.headers.get("i-twilio-idempotency-token")
            with server.lock:
                seen = server.idempotency.get(("sms", key)) if key else None
            if seen is not None:
                self._send(201, seen)
                return
            fault = self._fault("sms")
            if fault == "429":
                self._send(
                    429,
                    {"code": 20429, "message": "Too Many Requests", "status": 429},
                    {"Retry-After": "1"},
                )
                return
            if fault == "500":
                self._send(500, {"code": 20500, "message": "Internal Server Error", "status": 500})
                return
            sid = f"SM{server.next_id():032d}"
            msg = {
                "sid": sid,
                "account_sid": account,
                "to": body["To"],
                "from": body.get("From", ""),
                "body": body["Body"],
                "status": "queued",
                "num_segments": "1",
            }
            with server.lock:
                server.posts["sms"].append({"id": sid, "to": body["To"], "text": body["Body"]})
                if key:
                    server.idempotency[("sms", key)] = msg
            self._hold(fault)
            self._send(201, msg)

        def _tme(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            """The public channel preview, t.me/s/<username>."""
            items = []
            for p in server.live("telegram"):
                m = server.metrics.get(f"telegram:{p['id']}", {})
                stamp = datetime.now(UTC).isoformat()
                items.append(
                    f'<div class="tgme_widget_message_wrap"><div class="tgme_widget_message '
                    f'js-widget_message" data-post="{TG_USERNAME}/{p["id"]}">'
                    f'<div class="tgme_widget_message_text js-message_text" dir="auto">'
                    f"{p['text']}</div>"
                    f'<div class="tgme_widget_message_footer"><span class="tgme_widget_message_'
                    f'views">{m.get("views", 0)}</span><a class="tgme_widget_message_date" '
                    f'href="https://t.me/{TG_USERNAME}/{p["id"]}"><time datetime="{stamp}">'
                    f"now</time></a></div></div></div>"
                )
            html = (
                '<html><body><section class="tgme_channel_history js-message_history">'
                + "".join(items)
                + "</section></body></html>"
            )
            self._send(200, html, ctype="text/html; charset=utf-8")

        # -- Mastodon (https://docs.joinmastodon.org/methods/statuses/) -------------------

        def _status(self, p: dict[str, Any]) -> dict[str, Any]:
            m = server.metrics.get(f"mastodon:{p['id']}", {})
            return {
                "id": p["id"],
                "created_at": p["created_at"],
                "url": f"{server.url}/mastodon/@embassy/{p['id']}",
                "uri": f"{server.url}/mastodon/users/embassy/statuses/{p['id']}",
                "content": f"<p>{p['text']}</p>",
                "language": p.get("language"),
                "visibility": p.get("visibility", "public"),
                "replies_count": m.get("replies", 0),
                "reblogs_count": m.get("reposts", 0),
                "favourites_count": m.get("reactions", 0),
            }

        def _mastodon(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            auth = self.headers.get("authorization", "")
            if auth != f"Bearer {TOKENS['mastodon']}" or "mastodon" in server.expired:
                self._send(401, {"error": "The access token is invalid"})
                return
            if path == "/api/v1/statuses" and method == "POST":
                key = self.headers.get("idempotency-key")
                with server.lock:
                    seen = server.idempotency.get(("mastodon", key)) if key else None
                if seen is not None:
                    self._send(200, self._status(seen))
                    return
                fault = self._fault("mastodon")
                if fault == "expired":
                    self._send(401, {"error": "The access token is invalid"})
                    return
                if fault == "429":
                    reset = datetime.fromtimestamp(time.time() + 300, UTC).isoformat()
                    self._send(
                        429,
                        {"error": "Too many requests"},
                        {
                            "X-RateLimit-Limit": "300",
                            "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": reset,
                        },
                    )
                    return
                if fault == "500":
                    self._send(500, {"error": "We're sorry, but something went wrong"})
                    return
                text = str(body.get("status", ""))
                if _graphemes(text) > 500:
                    self._send(
                        422, {"error": "Validation failed: Text character limit of 500 exceeded"}
                    )
                    return
                p = {
                    "id": str(server.next_id()),
                    "text": text,
                    "language": body.get("language"),
                    "visibility": body.get("visibility", "public"),
                    "created_at": datetime.now(UTC).isoformat(),
                    "idempotency_key": key,
                }
                with server.lock:
                    server.posts["mastodon"].append(p)
                    if key:
                        server.idempotency[("mastodon", key)] = p
                self._hold(fault)
                self._send(200, self._status(p))
                return
            sid = path.rsplit("/", 1)[-1]
            found = next((p for p in server.live("mastodon") if p["id"] == sid), None)
            if found is None:
                self._send(404, {"error": "Record not found"})
            elif method == "GET":
                self._send(200, self._status(found))
            elif method == "PUT":
                found["text"] = body.get("status", found["text"])
                self._send(200, self._status(found))
            elif method == "DELETE":
                found["deleted"] = True
                self._send(200, {**self._status(found), "text": found["text"]})

        # -- Bluesky (AT Protocol XRPC) ---------------------------------------------------

        def _bluesky(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            nsid = path.removeprefix("/xrpc/")
            if nsid == "com.atproto.server.createSession":
                if body.get("password") != TOKENS["bluesky"] or "bluesky" in server.expired:
                    self._send(
                        401,
                        {
                            "error": "AuthenticationRequired",
                            "message": "Invalid identifier or password",
                        },
                    )
                    return
                jwt = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()
                server.sessions[jwt] = BSKY_DID
                self._send(
                    200,
                    {
                        "accessJwt": jwt,
                        "refreshJwt": jwt + "r",
                        "handle": body.get("identifier"),
                        "did": BSKY_DID,
                        "active": True,
                    },
                )
                return
            jwt = self.headers.get("authorization", "").removeprefix("Bearer ")
            public = nsid in ("com.atproto.repo.getRecord", "app.bsky.feed.getPosts")
            if jwt not in server.sessions and not public:
                self._send(400, {"error": "ExpiredToken", "message": "Token has expired"})
                return
            if nsid == "com.atproto.repo.createRecord":
                fault = self._fault("bluesky")
                if fault == "expired":
                    server.sessions.pop(jwt, None)
                    server.expired.add("bluesky")
                    self._send(400, {"error": "ExpiredToken", "message": "Token has expired"})
                    return
                if fault == "429":
                    self._send(
                        429,
                        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                        {
                            "ratelimit-limit": "5000",
                            "ratelimit-remaining": "0",
                            "ratelimit-reset": str(int(time.time()) + 120),
                            "ratelimit-policy": "5000;w=3600",
                        },
                    )
                    return
                if fault == "500":
                    self._send(
                        500, {"error": "InternalServerError", "message": "Internal Server Error"}
                    )
                    return
                record = body.get("record") or {}
                rkey = body.get("rkey") or str(server.next_id())
                if _graphemes(str(record.get("text", ""))) > 300:
                    self._send(
                        400,
                        {
                            "error": "InvalidRecord",
                            "message": "Invalid app.bsky.feed.post record: Record/text must "
                            "not be longer than 300 graphemes",
                        },
                    )
                    return
                uri = f"at://{BSKY_DID}/{body.get('collection')}/{rkey}"
                with server.lock:
                    if any(p["uri"] == uri for p in server.posts["bluesky"]):
                        exists = True
                    else:
                        exists = False
                        server.posts["bluesky"].append(
                            {
                                "uri": uri,
                                "rkey": rkey,
                                "text": record.get("text"),
                                "langs": record.get("langs"),
                            }
                        )
                if exists:
                    self._send(400, {"error": "InvalidRequest", "message": "Record already exists"})
                    return
                self._hold(fault)
                self._send(
                    200,
                    {
                        "uri": uri,
                        "cid": "bafyrei" + hashlib.sha256(uri.encode()).hexdigest()[:40],
                        "validationStatus": "valid",
                    },
                )
            elif nsid == "com.atproto.repo.getRecord":
                uri = f"at://{BSKY_DID}/{query.get('collection')}/{query.get('rkey')}"
                found = next((p for p in server.live("bluesky") if p["uri"] == uri), None)
                if found is None:
                    self._send(
                        400, {"error": "RecordNotFound", "message": "Could not locate record"}
                    )
                else:
                    self._send(
                        200, {"uri": uri, "cid": "bafyrei0", "value": {"text": found["text"]}}
                    )
            elif nsid == "com.atproto.repo.deleteRecord":
                uri = f"at://{BSKY_DID}/{body.get('collection')}/{body.get('rkey')}"
                for p in server.posts["bluesky"]:
                    if p["uri"] == uri:
                        p["deleted"] = True
                self._send(200, {})
            elif nsid == "app.bsky.feed.getPosts":
                uris = parse_qs(urlsplit(self.path).query).get("uris", [])
                posts = []
                for p in server.live("bluesky"):
                    if p["uri"] in uris:
                        m = server.metrics.get(f"bluesky:{p['uri']}", {})
                        posts.append(
                            {
                                "uri": p["uri"],
                                "cid": "bafyrei0",
                                "author": {"did": BSKY_DID, "handle": "kazembassy.test"},
                                "record": {"$type": "app.bsky.feed.post", "text": p["text"]},
                                "replyCount": m.get("replies", 0),
                                "repostCount": m.get("reposts", 0),
                                "likeCount": m.get("reactions", 0),
                                "quoteCount": 0,
                                "indexedAt": datetime.now(UTC).isoformat(),
                            }
                        )
                self._send(200, {"posts": posts})
            else:
                self._send(501, {"error": "MethodNotImplemented", "message": nsid})

        # -- X API v2 -------------------------------------------------------------------

        def _x(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            if self.headers.get("authorization") != f"Bearer {TOKENS['x']}" or (
                "x" in server.expired
            ):
                self._send(
                    401,
                    {
                        "title": "Unauthorized",
                        "type": "about:blank",
                        "status": 401,
                        "detail": "Unauthorized",
                    },
                )
                return
            if path == "/2/tweets" and method == "POST":
                fault = self._fault("x")
                if fault == "429":
                    self._send(
                        429,
                        {
                            "title": "Too Many Requests",
                            "detail": "Too Many Requests",
                            "type": "about:blank",
                            "status": 429,
                        },
                        {
                            "x-rate-limit-limit": "100",
                            "x-rate-limit-remaining": "0",
                            "x-rate-limit-reset": str(int(time.time()) + 900),
                        },
                    )
                    return
                if fault == "500":
                    self._send(
                        500,
                        {
                            "title": "Internal Server Error",
                            "status": 500,
                            "type": "about:blank",
                            "detail": "Internal Server Error",
                        },
                    )
                    return
                text = str(body.get("text", ""))
                from elshi.speak.text import x_weighted_length

                if x_weighted_length(text) > 280:
                    self._send(
                        400,
                        {
                            "errors": [
                                {
                                    "parameters": {"text": [text[:20]]},
                                    "message": "Your Tweet text is too long.",
                                }
                            ],
                            "title": "Invalid Request",
                            "detail": "One or more parameters to your request was invalid.",
                            "type": "https://api.twitter.com/2/problems/invalid-request",
                        },
                    )
                    return
                if any(p["text"] == text for p in server.live("x")):
                    self._send(
                        403,
                        {
                            "detail": "You are not allowed to create a Tweet with duplicate "
                            "content.",
                            "type": "about:blank",
                            "title": "Forbidden",
                            "status": 403,
                        },
                    )
                    return
                tid = str(server.next_id() * 1000003)
                server.posts["x"].append({"id": tid, "text": text})
                self._hold(fault)
                self._send(
                    201, {"data": {"id": tid, "text": text, "edit_history_tweet_ids": [tid]}}
                )
                return
            if path.startswith("/2/users/"):
                data = [
                    {"id": p["id"], "text": p["text"], "edit_history_tweet_ids": [p["id"]]}
                    for p in reversed(server.live("x"))
                ]
                self._send(200, {"data": data, "meta": {"result_count": len(data)}})
                return
            tid = path.rsplit("/", 1)[-1]
            found = next((p for p in server.live("x") if p["id"] == tid), None)
            if found is None:
                self._send(
                    404,
                    {
                        "title": "Not Found Error",
                        "status": 404,
                        "detail": f"Could not find tweet with id: [{tid}].",
                    },
                )
            elif method == "DELETE":
                found["deleted"] = True
                self._send(200, {"data": {"deleted": True}})
            else:
                m = server.metrics.get(f"x:{tid}", {})
                self._send(
                    200,
                    {
                        "data": {
                            "id": tid,
                            "text": found["text"],
                            "edit_history_tweet_ids": [tid],
                            "public_metrics": {
                                "retweet_count": m.get("reposts", 0),
                                "reply_count": m.get("replies", 0),
                                "like_count": m.get("reactions", 0),
                                "quote_count": 0,
                                "bookmark_count": 0,
                                "impression_count": m.get("views", 0),
                            },
                        }
                    },
                )

        # -- Facebook Graph API ---------------------------------------------------------

        def _fb_error(
            self, status: int, code: int, message: str, subcode: int | None = None
        ) -> None:
            err: dict[str, Any] = {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": "AbCdEf123",
            }
            if subcode:
                err["error_subcode"] = subcode
            self._send(status, {"error": err})

        def _facebook(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            token = query.get("access_token") or body.get("access_token")
            if token != TOKENS["facebook"] or "facebook" in server.expired:
                self._fb_error(
                    400,
                    190,
                    "Error validating access token: Session has expired on "
                    + formatdate(usegmt=True)
                    + ".",
                    463,
                )
                return
            path = path.removeprefix("/v21.0")
            if path.endswith("/feed") and method == "POST":
                fault = self._fault("facebook")
                if fault == "expired":
                    self._fb_error(
                        400, 190, "Error validating access token: Session has expired.", 463
                    )
                    return
                if fault == "429":
                    self._fb_error(400, 32, "(#32) Page request limit reached")
                    return
                if fault == "500":
                    self._fb_error(500, 1, "An unknown error has occurred.")
                    return
                page = path.strip("/").split("/")[0]
                pid = f"{page}_{server.next_id()}"
                server.posts["facebook"].append({"id": pid, "message": body.get("message")})
                self._hold(fault)
                self._send(200, {"id": pid})
                return
            if path.endswith("/feed"):
                data = [
                    {
                        "id": p["id"],
                        "message": p["message"],
                        "created_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
                    }
                    for p in reversed(server.live("facebook"))
                ]
                self._send(200, {"data": data, "paging": {}})
                return
            if path.endswith("/insights"):
                pid = path.strip("/").split("/")[0]
                m = server.metrics.get(f"facebook:{pid}", {})
                self._send(
                    200,
                    {
                        "data": [
                            {
                                "name": "post_impressions",
                                "period": "lifetime",
                                "values": [{"value": m.get("views", 0)}],
                                "id": f"{pid}/insights/post_impressions/lifetime",
                            }
                        ]
                    },
                )
                return
            pid = path.strip("/")
            found = next((p for p in server.live("facebook") if p["id"] == pid), None)
            if found is None:
                self._fb_error(400, 100, "Unsupported get request.", 33)
            elif method == "DELETE":
                found["deleted"] = True
                self._send(200, {"success": True})
            elif method == "POST":
                found["message"] = body.get("message")
                self._send(200, {"success": True})
            else:
                m = server.metrics.get(f"facebook:{pid}", {})
                self._send(
                    200,
                    {
                        "id": pid,
                        "shares": {"count": m.get("reposts", 0)},
                        "reactions": {
                            "data": [],
                            "summary": {
                                "total_count": m.get("reactions", 0),
                                "viewer_reaction": "NONE",
                            },
                        },
                        "comments": {
                            "data": [],
                            "summary": {
                                "order": "ranked",
                                "total_count": m.get("replies", 0),
                                "can_comment": True,
                            },
                        },
                    },
                )

    return Handler


# ---------------------------------------------------------------------------- test set-up


def staff(db: Any, mission_slug: str = "berlin") -> dict[str, Any]:
    """Create a mission with a drafter, two approvers and an admin; return their principals."""
    from elshi.accounts import service as accounts
    from elshi.missions import service as missions

    out: dict[str, Any] = {}
    with db.session() as s:
        hq = missions.ensure_hq(db=s)
        mission = missions.create_mission(
            db=s, slug=mission_slug, name="Embassy in Berlin", parent_id=hq.id
        )
        out["mission_id"] = mission.id
        for name, role in (
            ("drafter", "press"),
            ("approver", "approver"),
            ("approver2", "approver"),
            ("admin", "admin"),
        ):
            user = accounts.create_user(
                db=s,
                email=f"{name}@{mission_slug}.example",
                password="correct horse battery",
                name=name.title(),
            )
            accounts.grant_role(db=s, user_id=user.id, mission_id=mission.id, role=role)
            out[f"{name}_id"] = user.id
    with db.session() as s:
        for name in ("drafter", "approver", "approver2", "admin"):
            out[name] = accounts.load_principal(db=s, user_id=out[f"{name}_id"])
    return out


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

    def __init__(self) -> None:
        import socket

        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        self.refuse: set[str] = set()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        """Refuse the addresses in `refuse` as a real server refuses an unknown mailbox."""
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message."""
        from email import message_from_bytes
        from email.policy import default

        self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 Message accepted for delivery"

    def start(self) -> Mailbox:
        """Start the SMTP server."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop the SMTP server."""
        self.controller.stop()

    def config(self) -> dict[str, Any]:
        """Return the e-mail channel settings pointing here."""
        return {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "security": "none",
            "from_address": "Embassy <news@embassy.example>",
        }

    def to(self, address: str) -> list[Any]:
        """Return the messages sent to an address."""
        return [m for m in self.messages if m["To"] == address]
