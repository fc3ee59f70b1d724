"""Telegram connectors: public web preview pages, Desktop exports, Telethon JSON dumps, live API.

Every connector here maps a message to platform "telegram" with the external id
"<channel>/<message id>". The channel part is the public username in lower case (Telegram
usernames are case-insensitive) or "c/<numeric channel id>" when no username is known (the
same form as Telegram's own t.me/c/ links), so a message read by any of these connectors is
stored once. Files that carry no username (exports, dumps) take it as the `channel` option.

Messages with no text (a photo, sticker or video without a caption) and service messages
("Channel created", pins) are skipped, not quarantined: they are not broken, and they carry
nothing to read.

The connectors live in telegram_web.py (preview pages), telegram_files.py (Desktop exports and
Telethon JSON dumps) and telegram_api.py (live API), on the helpers of telegram_base.py. Every
name stays importable from here, as before the split.
"""

from __future__ import annotations

from elshi.connectors.base import Connector
from elshi.connectors.telegram_api import TelegramApiConfig as TelegramApiConfig
from elshi.connectors.telegram_api import TelegramApiConnector as TelegramApiConnector
from elshi.connectors.telegram_api import TelegramApiError as TelegramApiError
from elshi.connectors.telegram_api import TelethonMissing as TelethonMissing
from elshi.connectors.telegram_api import map_api_message as map_api_message
from elshi.connectors.telegram_base import PLATFORM as PLATFORM
from elshi.connectors.telegram_base import PUBLIC_BASE as PUBLIC_BASE
from elshi.connectors.telegram_base import channel_id_from_peer as channel_id_from_peer
from elshi.connectors.telegram_base import channel_key as channel_key
from elshi.connectors.telegram_base import jsonable as jsonable
from elshi.connectors.telegram_base import normalize_channel as normalize_channel
from elshi.connectors.telegram_base import parse_count as parse_count
from elshi.connectors.telegram_base import post_ref as post_ref
from elshi.connectors.telegram_files import TelegramExportConfig as TelegramExportConfig
from elshi.connectors.telegram_files import TelegramExportConnector as TelegramExportConnector
from elshi.connectors.telegram_files import TelegramJsonConfig as TelegramJsonConfig
from elshi.connectors.telegram_files import TelegramJsonConnector as TelegramJsonConnector
from elshi.connectors.telegram_files import export_text as export_text
from elshi.connectors.telegram_files import map_dump_message as map_dump_message
from elshi.connectors.telegram_files import map_export_message as map_export_message
from elshi.connectors.telegram_web import PreviewPage as PreviewPage
from elshi.connectors.telegram_web import TelegramWebConfig as TelegramWebConfig
from elshi.connectors.telegram_web import TelegramWebConnector as TelegramWebConnector
from elshi.connectors.telegram_web import TelegramWebError as TelegramWebError
from elshi.connectors.telegram_web import html_text as html_text
from elshi.connectors.telegram_web import map_web_message as map_web_message
from elshi.connectors.telegram_web import parse_preview_page as parse_preview_page
from elshi.plugins import hookimpl


@hookimpl
def elshi_connectors() -> list[type[Connector]]:
    """Register the Telegram connectors."""
    return [
        TelegramWebConnector,
        TelegramExportConnector,
        TelegramJsonConnector,
        TelegramApiConnector,
    ]
