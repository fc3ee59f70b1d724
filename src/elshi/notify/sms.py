"""SMS through a gateway plugin, registered through the `elshi_sms_gateways` hook.

The built-in gateway speaks the Twilio Messages API format (POST
/2010-04-01/Accounts/{AccountSid}/Messages.json, form fields To, From, Body, HTTP Basic
auth, JSON answer with `sid`), which many SMS providers also accept. Every send carries an
idempotency key (header I-Twilio-Idempotency-Token) so a gateway that honours it never sends
the same message twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import httpx

from elshi.notify.message import Message, Sender, SendError, retry_after_header
from elshi.plugins import get_sms_gateway, hookimpl
from elshi.settings import Settings

#: What a gateway raises: the delivery layer's SendError (message, retry, retry_after).
GatewayError = SendError


class SmsGateway(ABC):
    """Sends one SMS; returns the gateway's message id."""

    slug: ClassVar[str]
    title: ClassVar[str]

    @abstractmethod
    def send(self, http: httpx.Client, settings: Settings, *, to: str, body: str, key: str) -> str:
        """Send `body` to `to` (idempotency key `key`); raise GatewayError on failure."""


def http_failure(resp: httpx.Response, what: str) -> SendError:
    """Turn an HTTP answer into a GatewayError: 429 and 5xx may be retried, others not."""
    retry = resp.status_code == 429 or resp.status_code >= 500
    return SendError(
        f"{what}: HTTP {resp.status_code} {resp.text[:200]}",
        retry=retry,
        retry_after=retry_after_header(resp.headers.get("retry-after")),
        kind="rate" if resp.status_code == 429 else "server" if retry else "refused",
        status=resp.status_code,
    )


class TwilioGateway(SmsGateway):
    """The Twilio Messages API format."""

    slug = "twilio"
    title = "Twilio Messages API (and compatible gateways)"

    def send(self, http: httpx.Client, settings: Settings, *, to: str, body: str, key: str) -> str:
        """POST the message; 201 with a `sid` is success."""
        account = settings.crisis_sms_account
        url = f"{settings.crisis_sms_url.rstrip('/')}/2010-04-01/Accounts/{account}/Messages.json"
        try:
            resp = http.post(
                url,
                data={"To": to, "From": settings.crisis_sms_from, "Body": body},
                auth=(account, settings.crisis_sms_token),
                headers={"I-Twilio-Idempotency-Token": key},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise SendError(f"SMS gateway unreachable: {exc}", retry=True, kind="network") from exc
        if resp.status_code in (200, 201):
            try:
                return str(resp.json()["sid"])
            except (ValueError, KeyError):
                raise SendError(
                    "SMS gateway answered without a message sid", retry=False, kind="server"
                ) from None
        raise http_failure(resp, "SMS gateway")


@hookimpl
def elshi_sms_gateways() -> list[type[SmsGateway]]:
    """Register the built-in SMS gateway."""
    return [TwilioGateway]


class SmsSender(Sender):
    """SMS through the gateway plugin ELSHI_CRISIS_SMS_GATEWAY names, one keep-alive client."""

    medium = "sms"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gateway = get_sms_gateway(settings.crisis_sms_gateway)
        self.http = httpx.Client(
            timeout=settings.http_timeout, headers={"User-Agent": settings.user_agent}
        )

    def send(self, message: Message) -> str:
        """Send the text to the phone number `to` with the message's idempotency key.

        A failure after the request left (no answer) is "unsure": it may have been sent.
        """
        if not self.settings.crisis_sms_url:
            raise SendError("SMS: ELSHI_CRISIS_SMS_URL is not set", retry=False, kind="config")
        try:
            return self.gateway.send(
                self.http, self.settings, to=message.to, body=message.text, key=message.key
            )
        except httpx.HTTPError as exc:
            host = httpx.URL(self.settings.crisis_sms_url).host
            raise SendError(
                f"SMS gateway {host}: {type(exc).__name__}: {exc}", retry=False, kind="unsure"
            ) from exc

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


def send(message: Message, settings: Settings) -> str:
    """Send one SMS; raise SendError on failure."""
    with SmsSender(settings) as sender:
        return sender.send(message)
