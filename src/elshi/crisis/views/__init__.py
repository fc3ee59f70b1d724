"""Crisis pages: `public` (the citizen's check-in, walk-in form, push and webhooks: /c/... and
/crisis/sms/inbound) and `router` (the officers' pages under /crisis/...)."""

from __future__ import annotations

from elshi.crisis.views.officers import router
from elshi.crisis.views.public import public, twilio_signature

__all__ = ["public", "router", "twilio_signature"]
