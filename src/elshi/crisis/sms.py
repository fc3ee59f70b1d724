"""SMS gateways moved to elshi.notify.sms; these names stay for gateway plugins."""

from elshi.notify.sms import GatewayError, SmsGateway, TwilioGateway, http_failure

__all__ = ["GatewayError", "SmsGateway", "TwilioGateway", "http_failure"]
