"""Loopback stand-ins for the platforms elshi publishes to.

Each follows its platform's documented request and response formats (paths, headers, JSON
bodies, error shapes, rate-limit headers): Telegram Bot API and the t.me/s web preview,
Mastodon statuses API (with Idempotency-Key), Bluesky AT Protocol XRPC, X API v2 and the
Facebook Graph API. The server keeps every post it accepted (`posts[platform]`), so a test
can check that nothing was posted twice. `fail(platform, kind)` makes the next publish
fail: "expired", "429", "500", "502" (a gateway error, nothing posted), "hold:SECONDS"
(accept the post, answer late), "accept502" (accept the post, then answer 502 Bad Gateway as
a proxy in front of the platform does) or "acceptdrop" (accept the post, then close the
connection without an answer);
`fail(platform, "media")` makes the next image upload fail the way that platform refuses a
file. Every image upload is kept in `uploads[platform]` (its form fields and bytes), and each
post keeps the media it was made with, so a test checks the documented request shapes and
that a retry never uploads or posts twice. `engage(...)` sets who liked, reposted or replied.
Adding "lookup:<platform>" to `broken` makes the read elshi looks a post up with (Telegram's
preview, X's timeline, Facebook's feed, Bluesky's getRecord) answer 503.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
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
#: What a proxy in front of a platform answers when the platform behind it failed.
BAD_GATEWAY = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)
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
        self.uploads: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.engagers: dict[str, dict[str, list[dict[str, str]]]] = {}
        #: Lists of engaging accounts (e.g. "context", "favourited_by") that answer 500.
        self.broken: set[str] = set()
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

    def engage(self, external_key: str, **kinds: list[dict[str, str]]) -> None:
        """Set who engaged with one post: likes=[...], reposts=[...], replies=[...], each
        account {"handle": ..., "name": ...} (handles as the platform shows them)."""
        self.engagers[external_key] = kinds

    def upload(self, platform: str, fields: dict[str, Any], data: bytes, ctype: str) -> str:
        """Keep an accepted image upload and return its new id."""
        mid = str(self.next_id())
        with self.lock:
            self.uploads[platform].append(
                {
                    "id": mid,
                    "fields": fields,
                    "size": len(data),
                    "content_type": ctype,
                    "dimensions": _image_size(data),
                    "used": 0,
                }
            )
        return mid

    def uploaded(self, platform: str, mid: str) -> dict[str, Any] | None:
        """Return an upload by id."""
        return next((u for u in self.uploads[platform] if u["id"] == mid), None)

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


def _multipart(ctype: str, raw: bytes) -> dict[str, Any]:
    """Parse multipart/form-data: text fields as strings, files under "_files"."""
    msg = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw
    )
    out: dict[str, Any] = {"_files": {}}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            out["_files"][name] = {
                "filename": filename,
                "content_type": part.get_content_type(),
                "data": payload,
            }
        else:
            out[str(name)] = payload.decode()
    return out


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Return the picture's size when the bytes are an image, else None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None


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
            if ctype.startswith("multipart/form-data") and raw:
                return _multipart(ctype, raw), raw
            if ctype.startswith("image/") or ctype == "application/octet-stream":
                return {"_raw": raw, "_type": ctype}, raw
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

        def _media_fault(self, platform: str) -> bool:
            """Take a "media" fault off the queue if it is next (others wait for the post)."""
            with server.lock:
                queue = server.faults[platform]
                if queue and queue[0] == "media":
                    queue.pop(0)
                    return True
                return False

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

        def _gateway(self, fault: str | None) -> bool:
            """Answer 502 Bad Gateway, posting nothing, when the fault says so."""
            if fault != "502":
                return False
            self._send(502, BAD_GATEWAY, ctype="text/html")
            return True

        def _accepted(self, fault: str | None, status: int, body: Any) -> None:
            """Answer a post the platform has just stored, unless a fault answers late, with
            502 Bad Gateway, or not at all (the connection closed without an answer)."""
            if fault == "accept502":
                self._send(502, BAD_GATEWAY, ctype="text/html")
                return
            if fault == "acceptdrop":
                self.close_connection = True
                return
            self._hold(fault)
            self._send(status, body)

        def _lookup_broken(self, platform: str) -> bool:
            """Answer 503 to a read of recent posts when `broken` holds "lookup:<platform>"."""
            if f"lookup:{platform}" not in server.broken:
                return False
            self._send(503, BAD_GATEWAY.replace("502 Bad", "503 Service"), ctype="text/html")
            return True

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
                if self._gateway(fault):
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
                self._accepted(fault, 200, {"ok": True, "result": msg})
            elif api_method in ("sendPhoto", "sendMediaGroup"):
                self._telegram_photos(api_method, body, chat)
            elif api_method == "editMessageCaption":
                for p in server.posts["telegram"]:
                    if p["id"] == str(body.get("message_id")) and "photo" in p:
                        p["caption"] = body["caption"]
                        self._send(200, {"ok": True, "result": {"message_id": int(p["id"])}})
                        return
                self._tg_error(400, "Bad Request: message to edit not found")
            elif api_method == "editMessageText":
                for p in server.posts["telegram"]:
                    if p["id"] == str(body.get("message_id")) and "photo" in p:
                        self._tg_error(400, "Bad Request: there is no text in the message to edit")
                        return
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

        def _tg_error(self, status: int, description: str) -> None:
            self._send(status, {"ok": False, "error_code": status, "description": description})

        def _telegram_photos(self, api_method: str, body: Any, chat: dict[str, Any]) -> None:
            """sendPhoto (field "photo") or sendMediaGroup (a JSON "media" array of
            InputMediaPhoto whose "media" is attach://<field>), as multipart/form-data."""
            files = body.get("_files") or {}
            if api_method == "sendPhoto":
                items = [{"media": "attach://photo", "caption": body.get("caption")}]
            else:
                items = json.loads(body.get("media") or "[]")
                if not 2 <= len(items) <= 10 or any(i.get("type") != "photo" for i in items):
                    self._tg_error(400, "Bad Request: wrong number of media in the album")
                    return
            if self._media_fault("telegram"):
                self._tg_error(400, "Bad Request: IMAGE_PROCESS_FAILED")
                return
            photos = []
            for item in items:
                name = str(item.get("media", "")).removeprefix("attach://")
                f = files.get(name)
                if f is None or _image_size(f["data"]) is None:
                    self._tg_error(400, "Bad Request: wrong file identifier/HTTP URL specified")
                    return
                if len(f["data"]) > 10_000_000:
                    self._tg_error(400, "Bad Request: file is too big")
                    return
                photos.append((f, item.get("caption")))
            caption = photos[0][1] or ""
            if len(caption.encode("utf-16-le")) // 2 > 1024:
                self._tg_error(400, "Bad Request: message caption is too long")
                return
            result = []
            for f, cap in photos:
                mid = server.next_id()
                upload = server.upload("telegram", {"caption": cap}, f["data"], f["content_type"])
                w, h = _image_size(f["data"]) or (0, 0)
                server.posts["telegram"].append(
                    {"id": str(mid), "text": cap or "", "photo": upload, "caption": cap}
                )
                result.append(
                    {
                        "message_id": mid,
                        "sender_chat": chat,
                        "chat": chat,
                        "date": int(time.time()),
                        "photo": [{"file_id": f"AgAC{upload}", "width": w, "height": h}],
                        **({"caption": cap} if cap else {}),
                    }
                )
            self._send(
                200, {"ok": True, "result": result[0] if api_method == "sendPhoto" else result}
            )

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
            if self._lookup_broken("telegram"):
                return
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
                "media_attachments": [
                    self._attachment(u)
                    for u in (server.uploaded("mastodon", i) for i in p.get("media_ids", []))
                    if u is not None
                ],
            }

        def _attachment(self, upload: dict[str, Any]) -> dict[str, Any]:
            w, h = upload["dimensions"] or (0, 0)
            return {
                "id": upload["id"],
                "type": "image",
                "url": f"{server.url}/mastodon/system/media/{upload['id']}.jpg",
                "preview_url": f"{server.url}/mastodon/system/media/{upload['id']}_small.jpg",
                "remote_url": None,
                "description": upload["fields"].get("description"),
                "meta": {"original": {"width": w, "height": h}},
                "blurhash": "UFBWY:8_0Jxv",
            }

        def _mastodon_media(self, body: Any) -> None:
            """POST /api/v2/media: multipart "file" with an optional "description"."""
            f = (body.get("_files") or {}).get("file")
            if self._media_fault("mastodon") or f is None or _image_size(f["data"]) is None:
                self._send(422, {"error": "Validation failed: File content type is invalid"})
                return
            if len(f["data"]) > 16 * 1024 * 1024:
                self._send(
                    422, {"error": "Validation failed: File file size must be less than 16 MB"}
                )
                return
            fields = {k: v for k, v in body.items() if not k.startswith("_")}
            mid = server.upload("mastodon", fields, f["data"], f["content_type"])
            found = server.uploaded("mastodon", mid)
            assert found is not None
            self._send(200, self._attachment(found))

        def _account(self, who: dict[str, str]) -> dict[str, Any]:
            handle = who["handle"]
            return {
                "id": str(abs(hash(handle)) % 10**9),
                "username": handle.split("@")[0],
                "acct": handle,
                "display_name": who.get("name", ""),
                "url": f"https://example.social/@{handle}",
            }

        def _mastodon_accounts(self, path: str, query: dict[str, str]) -> None:
            """reblogged_by / favourited_by (pages of 2 with a Link header), and context."""
            _, _, _, _, sid, what = path.split("/")
            who = server.engagers.get(f"mastodon:{sid}", {})
            if what in server.broken:
                self._send(500, {"error": "We're sorry, but something went wrong"})
                return
            if what == "context":
                replies = [
                    {
                        "id": str(900_000 + i),
                        "in_reply_to_id": sid,
                        "account": self._account(acc),
                        "content": "<p>reply</p>",
                    }
                    for i, acc in enumerate(who.get("replies", []))
                ]
                self._send(200, {"ancestors": [], "descendants": replies})
                return
            kind = {"reblogged_by": "reposts", "favourited_by": "likes"}.get(what)
            if kind is None:
                self._send(404, {"error": "Record not found"})
                return
            accounts = who.get(kind, [])
            start = int(query.get("max_id", "0"))
            page = accounts[start : start + 2]
            headers = {}
            if start + 2 < len(accounts):
                nxt = f"{server.url}/mastodon{path}?limit=80&max_id={start + 2}"
                headers["Link"] = f'<{nxt}>; rel="next"'
            self._send(200, [self._account(a) for a in page], headers)

        def _mastodon(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
            auth = self.headers.get("authorization", "")
            if auth != f"Bearer {TOKENS['mastodon']}" or "mastodon" in server.expired:
                self._send(401, {"error": "The access token is invalid"})
                return
            if path == "/api/v2/media" and method == "POST":
                self._mastodon_media(body)
                return
            if path.startswith("/api/v1/media/") and method == "GET":
                found = server.uploaded("mastodon", path.rsplit("/", 1)[-1])
                if found is None:
                    self._send(404, {"error": "Record not found"})
                else:
                    self._send(200, self._attachment(found))
                return
            if path.startswith("/api/v1/statuses/") and method == "GET" and path.count("/") == 5:
                self._mastodon_accounts(path, query)
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
                if self._gateway(fault):
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
                media_ids = [str(m) for m in body.get("media_ids") or []]
                attached = [server.uploaded("mastodon", m) for m in media_ids]
                if len(media_ids) > 4 or any(a is None or a["used"] for a in attached):
                    self._send(422, {"error": "Validation failed: Media ids are invalid"})
                    return
                for a in attached:
                    assert a is not None
                    a["used"] += 1
                p = {
                    "media_ids": media_ids,
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
                self._accepted(fault, 200, self._status(p))
                return
            sid = path.rsplit("/", 1)[-1]
            found = next((p for p in server.live("mastodon") if p["id"] == sid), None)
            if found is None:
                self._send(404, {"error": "Record not found"})
            elif method == "GET":
                self._send(200, self._status(found))
            elif method == "PUT":
                # As on Mastodon: an edit without media_ids[] drops the attachments.
                found["text"] = body.get("status", found["text"])
                found["media_ids"] = [str(m) for m in body.get("media_ids") or []]
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
            public = nsid in (
                "com.atproto.repo.getRecord",
                "app.bsky.feed.getPosts",
                "app.bsky.feed.getLikes",
                "app.bsky.feed.getRepostedBy",
                "app.bsky.feed.getPostThread",
            )
            if jwt not in server.sessions and not public:
                self._send(400, {"error": "ExpiredToken", "message": "Token has expired"})
                return
            if nsid == "com.atproto.repo.uploadBlob":
                self._bluesky_blob(body)
                return
            if nsid in ("app.bsky.feed.getLikes", "app.bsky.feed.getRepostedBy"):
                self._bluesky_actors(nsid, query)
                return
            if nsid == "app.bsky.feed.getPostThread":
                who = server.engagers.get(f"bluesky:{query.get('uri')}", {})
                replies = [
                    {
                        "$type": "app.bsky.feed.defs#threadViewPost",
                        "post": {
                            "uri": f"at://did:plc:r{i}/app.bsky.feed.post/r{i}",
                            "author": {"did": f"did:plc:r{i}", **self._bsky_actor(a)},
                            "record": {"text": "reply"},
                        },
                        "replies": [],
                    }
                    for i, a in enumerate(who.get("replies", []))
                ]
                self._send(
                    200,
                    {
                        "thread": {
                            "$type": "app.bsky.feed.defs#threadViewPost",
                            "post": {"uri": query.get("uri")},
                            "replies": replies,
                        }
                    },
                )
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
                if self._gateway(fault):
                    return
                if fault == "500":
                    self._send(
                        500, {"error": "InternalServerError", "message": "Internal Server Error"}
                    )
                    return
                record = body.get("record") or {}
                embed = record.get("embed")
                if embed is not None:
                    images = embed.get("images") if isinstance(embed, dict) else None
                    bad = (
                        embed.get("$type") != "app.bsky.embed.images"
                        or not isinstance(images, list)
                        or not 1 <= len(images) <= 4
                        or any(
                            not isinstance(i.get("alt"), str)
                            or server.uploaded(
                                "bluesky",
                                str(((i.get("image") or {}).get("ref") or {}).get("$link")),
                            )
                            is None
                            for i in images
                        )
                    )
                    if bad:
                        self._send(
                            400,
                            {"error": "InvalidRecord", "message": "Invalid embed: unknown blob"},
                        )
                        return
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
                                "embed": record.get("embed"),
                            }
                        )
                if exists:
                    self._send(400, {"error": "InvalidRequest", "message": "Record already exists"})
                    return
                self._accepted(
                    fault,
                    200,
                    {
                        "uri": uri,
                        "cid": "bafyrei" + hashlib.sha256(uri.encode()).hexdigest()[:40],
                        "validationStatus": "valid",
                    },
                )
            elif nsid == "com.atproto.repo.getRecord":
                if self._lookup_broken("bluesky"):
                    return
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

        def _bluesky_blob(self, body: Any) -> None:
            """com.atproto.repo.uploadBlob: the raw bytes, typed by Content-Type."""
            data = body.get("_raw") or b""
            if self._media_fault("bluesky"):
                self._send(400, {"error": "InvalidMimeType", "message": "Unsupported blob type"})
                return
            if len(data) > 1_000_000:
                self._send(400, {"error": "BlobTooLarge", "message": "This file is too large."})
                return
            cid = server.upload("bluesky", {}, data, str(body.get("_type")))
            self._send(
                200,
                {
                    "blob": {
                        "$type": "blob",
                        "ref": {"$link": cid},
                        "mimeType": body.get("_type"),
                        "size": len(data),
                    }
                },
            )

        def _bsky_actor(self, who: dict[str, str]) -> dict[str, Any]:
            return {"handle": who["handle"], "displayName": who.get("name", "")}

        def _bluesky_actors(self, nsid: str, query: dict[str, str]) -> None:
            """getLikes / getRepostedBy, two per page with a cursor."""
            who = server.engagers.get(f"bluesky:{query.get('uri')}", {})
            likes = nsid.endswith("getLikes")
            accounts = who.get("likes" if likes else "reposts", [])
            start = int(query.get("cursor") or 0)
            page = accounts[start : start + 2]
            out: dict[str, Any] = {"uri": query.get("uri")}
            if likes:
                out["likes"] = [
                    {
                        "createdAt": "2026-01-01T00:00:00Z",
                        "indexedAt": "2026-01-01T00:00:00Z",
                        "actor": {"did": f"did:plc:l{start + i}", **self._bsky_actor(a)},
                    }
                    for i, a in enumerate(page)
                ]
            else:
                out["repostedBy"] = [
                    {"did": f"did:plc:p{start + i}", **self._bsky_actor(a)}
                    for i, a in enumerate(page)
                ]
            if start + 2 < len(accounts):
                out["cursor"] = str(start + 2)
            self._send(200, out)

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
            if path == "/2/media/upload" and method == "POST":
                f = (body.get("_files") or {}).get("media")
                if (
                    self._media_fault("x")
                    or f is None
                    or body.get("media_category") != "tweet_image"
                    or _image_size(f["data"]) is None
                ):
                    self._send(
                        400,
                        {
                            "errors": [{"message": "media type unrecognized."}],
                            "title": "Invalid Request",
                            "detail": "One or more parameters to your request was invalid.",
                            "type": "https://api.twitter.com/2/problems/invalid-request",
                        },
                    )
                    return
                fields = {k: v for k, v in body.items() if not k.startswith("_")}
                mid = server.upload("x", fields, f["data"], f["content_type"])
                w, h = _image_size(f["data"]) or (0, 0)
                self._send(
                    200,
                    {
                        "data": {
                            "id": mid,
                            "media_key": f"3_{mid}",
                            "size": len(f["data"]),
                            "expires_after_secs": 86400,
                            "image": {"image_type": f["content_type"], "w": w, "h": h},
                        }
                    },
                )
                return
            if path == "/2/media/metadata" and method == "POST":
                found = server.uploaded("x", str(body.get("id")))
                alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
                if found is None or not isinstance(alt, str):
                    self._send(400, {"title": "Invalid Request", "detail": "bad media id"})
                    return
                found["fields"]["alt_text"] = alt
                self._send(200, {"data": {"id": found["id"], "associated_metadata": True}})
                return
            if path.startswith("/2/tweets/") and path.endswith(("/liking_users", "/retweeted_by")):
                tid, what = path.split("/")[3:5]
                accounts = server.engagers.get(f"x:{tid}", {}).get(
                    "likes" if what == "liking_users" else "reposts", []
                )
                start = int(query.get("pagination_token") or 0)
                page = accounts[start : start + 2]
                meta: dict[str, Any] = {"result_count": len(page)}
                if start + 2 < len(accounts):
                    meta["next_token"] = str(start + 2)
                data = [
                    {
                        "id": str(7000 + start + i),
                        "username": a["handle"],
                        "name": a.get("name", ""),
                    }
                    for i, a in enumerate(page)
                ]
                self._send(200, {"data": data, "meta": meta} if data else {"meta": meta})
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
                if self._gateway(fault):
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
                media_ids = [str(m) for m in (body.get("media") or {}).get("media_ids") or []]
                uploads = [server.uploaded("x", m) for m in media_ids]
                if len(media_ids) > 4 or any(u is None for u in uploads):
                    self._send(
                        400,
                        {
                            "errors": [{"message": "Your media IDs are invalid."}],
                            "title": "Invalid Request",
                            "detail": "One or more parameters to your request was invalid.",
                        },
                    )
                    return
                tid = str(server.next_id() * 1000003)
                server.posts["x"].append({"id": tid, "text": text, "media_ids": media_ids})
                self._accepted(
                    fault, 201, {"data": {"id": tid, "text": text, "edit_history_tweet_ids": [tid]}}
                )
                return
            if path.startswith("/2/users/"):
                if self._lookup_broken("x"):
                    return
                # As X does, the text of a post with pictures ends with a t.co link to them.
                data = [
                    {
                        "id": p["id"],
                        "text": p["text"]
                        + (f" https://t.co/m{p['id']}" if p.get("media_ids") else ""),
                        "edit_history_tweet_ids": [p["id"]],
                    }
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
            if path.endswith("/photos") and method == "POST":
                f = (body.get("_files") or {}).get("source")
                if self._media_fault("facebook") or f is None or _image_size(f["data"]) is None:
                    self._fb_error(400, 324, "(#324) Requires upload file", 2069019)
                    return
                fields = {k: v for k, v in body.items() if not k.startswith("_")}
                photo_id = server.upload("facebook", fields, f["data"], f["content_type"])
                if fields.get("published") != "false":
                    server.posts["facebook"].append(
                        {
                            "id": f"1001_{photo_id}",
                            "message": fields.get("message"),
                            "photos": [photo_id],
                        }
                    )
                    self._send(200, {"id": photo_id, "post_id": f"1001_{photo_id}"})
                else:
                    self._send(200, {"id": photo_id})
                return
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
                if self._gateway(fault):
                    return
                if fault == "500":
                    self._fb_error(500, 1, "An unknown error has occurred.")
                    return
                page = path.strip("/").split("/")[0]
                photos = []
                for i in range(10):
                    if f"attached_media[{i}]" not in body:
                        break
                    fbid = str(json.loads(body[f"attached_media[{i}]"]).get("media_fbid"))
                    found = server.uploaded("facebook", fbid)
                    if found is None or found["fields"].get("published") != "false":
                        self._fb_error(400, 100, "(#100) Invalid media_fbid", 1366046)
                        return
                    photos.append(fbid)
                pid = f"{page}_{server.next_id()}"
                server.posts["facebook"].append(
                    {"id": pid, "message": body.get("message"), "photos": photos}
                )
                self._accepted(fault, 200, {"id": pid})
                return
            if path.endswith("/feed"):
                if self._lookup_broken("facebook"):
                    return
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


#: Texts whose lengths differ from channel to channel: Cyrillic, Kazakh, Chinese, Arabic,
#: emoji (a flag, a family joined by ZWJ, a skin tone, a keycap) and links (X and Mastodon
#: count each link as 23).
COUNTING_SAMPLES = {
    "cyrillic": "Посольство приглашает всех на дни культуры.",
    "kazakh": "Қазақстан елшілігі мәдениет күндерін өткізеді: ғажайып, ұлы, үміт, әсем.",
    "chinese": "哈萨克斯坦大使馆在柏林举办文化日。",
    "arabic": "تنظم سفارة كازاخستان أيام الثقافة في برلين.",
    "emoji": "Келіңіздер 🇰🇿👨‍👩‍👧👍🏽 1️⃣ ❤️",
    "urls": "Толығырақ: https://example.org/news/2026/12/culture-days-in-berlin?lang=kk және http://e.kz",
}


def add_accounts(
    db: Any, team: dict[str, Any], settings: Any, configs: dict[str, tuple[dict[str, Any], Any]]
) -> None:
    """Give the team's mission one account per channel in `configs` (team[slug] = its id)."""
    from elshi.speak import service

    with db.session() as s:
        for ch, (config, secrets) in configs.items():
            team[ch] = service.add_account(
                db=s,
                actor=team["admin"],
                settings=settings,
                mission_id=team["mission_id"],
                channel=ch,
                name=f"{ch} account" if ch != "web" else "News page",
                config=config,
                secrets=secrets,
            ).id


def every_channel(db: Any, team: dict[str, Any], settings: Any, server: PlatformServer) -> None:
    """Give the team's mission one account on every built-in channel (team[slug] = its id)."""
    configs = {
        ch: server.account(ch) for ch in ("x", "bluesky", "mastodon", "telegram", "facebook")
    }
    configs["email"] = (
        {"smtp_host": "127.0.0.1", "security": "none", "from_address": "news@berlin.example"},
        {},
    )
    configs["web"] = ({}, {})
    add_accounts(db, team, settings, configs)


def signed_in(settings: Any, db: Any, who: str = "drafter") -> Any:
    """Return a web client (in English) signed in as one of the team from `staff`."""
    import re

    from fastapi.testclient import TestClient

    from elshi.app import create_app

    client = TestClient(create_app(settings, db=db), headers={"Accept-Language": "en"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    r = client.post(
        "/login",
        data={
            "email": f"{who}@berlin.example",
            "password": "correct horse battery",
            "next": "/speak",
            "csrf_token": token[1],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    return client


def server_figure(db: Any, team: dict[str, Any], channel: str, text: str) -> int:
    """The server's length of a text on the team's account of one channel (Channel.preview,
    the function the editor's first render uses)."""
    from elshi.plugins import get_channel
    from elshi.speak import service

    with db.session() as s:
        account = service.get_account(db=s, actor=team["admin"], account_id=team[channel])
        plugin = get_channel(channel)
        config = plugin.Config.model_validate(account.config)
    return plugin.preview(config, text=text, headline="", title="t").length
