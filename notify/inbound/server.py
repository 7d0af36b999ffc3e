"""The SMTP receiver of ``notify inbound`` (aiosmtpd), to sit behind the company's MX or a
relay's inbound route for ``bounces+…@`` and ``unsubscribe+…@`` the inbound domain.

A recipient notify did not make (or a forged token) is refused at RCPT (550). A message is
answered 250 only once what it says is committed (or it was kept for an operator); if the
database is down it is answered 451, so the sending server tries again and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy.exc import InterfaceError, OperationalError

from notify.config import Settings
from notify.db import SessionFactory
from notify.inbound.handling import handle
from notify.message.return_addresses import read

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


class InboundHandler:
    def __init__(self, sessions: SessionFactory, settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    def _ours(self, address: str) -> Any:
        return read(self.settings.secret_key_list, address, self.settings.inbound_domain)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook names)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self._ours(address) is None:
            return "550 5.1.1 no such address here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = bytes(envelope.original_content or envelope.content)
        loop = asyncio.get_running_loop()
        try:
            for address in envelope.rcpt_tos:
                returned = self._ours(address)
                if returned is not None:
                    outcome = await loop.run_in_executor(
                        None, handle, self.sessions, self.settings, returned, raw
                    )
                    log.info("returned message for a %s address: %s", returned.kind, outcome.what)
        except (OperationalError, InterfaceError):
            log.warning("database unavailable; asked the sender to try again")
            return "451 4.3.0 try again later"
        except Exception as error:  # never a permanent refusal, never our details to the sender
            log.exception("could not apply a returned message: %s", type(error).__name__)
            return "451 4.3.0 try again later"
        return "250 OK"


def serve(sessions: SessionFactory, settings: Settings, host: str, port: int) -> Controller:
    """Start the receiver in a thread of its own; the caller stops it."""
    controller = Controller(
        InboundHandler(sessions, settings),
        hostname=host,
        port=port,
        data_size_limit=MAX_MESSAGE_BYTES,
        decode_data=False,
    )
    controller.start()
    return controller
