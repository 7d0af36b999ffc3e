"""What the client raises."""

from __future__ import annotations

from typing import Any


class NotifyError(Exception):
    """The service answered with an error that retrying cannot fix (a 4xx other than 429):
    ``status`` and the answer's ``detail`` (a message, or the list of field problems)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"notify answered {status}: {detail}")
        self.status = status
        self.detail = detail


class NotifyUnavailableError(NotifyError):
    """Every attempt met a 429, a 5xx, a timeout or no connection; ``status`` is the last
    answer's (0 when there was none)."""
