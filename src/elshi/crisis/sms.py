"""SMS gateways for crisis messages, registered through the `elshi_sms_gateways` hook.

The built-in gateway speaks the Twilio Messages API format (POST
/2010-04-01/Accounts/{AccountSid}/Messages.json, form fields To, From, Body, HTTP Basic
auth, JSON answer with `sid`), which many SMS providers also accept. Every send carries an
idempotency key (header I-Twilio-Idempotency-Token) so a gateway that honours it never sends
the same delivery twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import httpx

from elshi.plugins import hookimpl
from elshi.settings import Settings


class GatewayError(Exception):
    """The gateway refused or failed; `retry` says whether trying later may help."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class SmsGateway(ABC):
    """Sends one SMS; returns the gateway's message id."""

    slug: ClassVar[str]
    title: ClassVar[str]

    @abstractmethod
    def send(self, http: httpx.Client, settings: Settings, *, to: str, body: str, key: str) -> str:
        """Send `body` to `to` (idempotency key `key`); raise GatewayError on failure."""


def http_failure(resp: httpx.Response, what: str) -> GatewayError:
    """Turn an HTTP answer into a GatewayError: 429 and 5xx may be retried, others not."""
    retry_after = None
    header = resp.headers.get("retry-after")
    if header and header.isdigit():
        retry_after = float(header)
    retry = resp.status_code == 429 or resp.status_code >= 500
    return GatewayError(
        f"{what}: HTTP {resp.status_code} {resp.text[:200]}", retry=retry, retry_after=retry_after
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
            raise GatewayError(f"SMS gateway unreachable: {exc}", retry=True) from exc
        if resp.status_code in (200, 201):
            try:
                return str(resp.json()["sid"])
            except (ValueError, KeyError):
                raise GatewayError(
                    "SMS gateway answered without a message sid", retry=False
                ) from None
        raise http_failure(resp, "SMS gateway")


@hookimpl
def elshi_sms_gateways() -> list[type[SmsGateway]]:
    """Register the built-in SMS gateway."""
    return [TwilioGateway]
