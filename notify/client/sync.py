"""The synchronous client (see :mod:`notify.client`)."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import httpx

from notify.client import operations
from notify.client.errors import NotifyUnavailableError
from notify.client.models import Accepted, NotificationState
from notify.client.retrying import RetryPolicy, retried

USER_AGENT = "notify-client/1"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text[:500]}


class NotifyClient:
    """One connection pool to a notify service; close it (or use ``with``) when done."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> NotifyClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, call: operations.Call) -> tuple[int, Any]:
        """The answer to ``call``, retried as :class:`RetryPolicy` says; the same request (its
        idempotency key included) each time."""
        last_status, last_problem = 0, "no answer"
        for attempt in range(1, self.retry.attempts + 1):
            retry_after = None
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, headers=call.headers
                )
            except httpx.TransportError as error:
                last_problem = f"{type(error).__name__}: {error}"
            else:
                if not retried(response.status_code):
                    return response.status_code, _json(response)
                last_status, last_problem = response.status_code, str(_json(response))
                retry_after = response.headers.get("retry-after")
            if attempt < self.retry.attempts:
                time.sleep(self.retry.wait(attempt, retry_after))
        raise NotifyUnavailableError(
            last_status, f"gave up after {self.retry.attempts} attempts: {last_problem}"
        )

    def send(
        self,
        template: str,
        user_id: str,
        *,
        data: dict[str, Any] | None = None,
        email: str | None = None,
        idempotency_key: str | None = None,
    ) -> Accepted:
        """Queue one notification; a key is made when none is given and kept for retries."""
        key = idempotency_key or operations.new_idempotency_key()
        status, body = self._call(operations.send(template, user_id, data, email, key))
        return operations.accepted(status, body, key)

    def notification(self, notification_id: str) -> NotificationState:
        return operations.state(*self._call(operations.notification(notification_id)))

    def put_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Create or update a user: ``email``, ``locale``, ``timezone``, ``first_name``,
        ``name``, ``attributes``."""
        result: dict[str, Any] = operations.answer(
            *self._call(operations.put_user(user_id, fields))
        )
        return result

    def user(self, user_id: str) -> dict[str, Any]:
        result: dict[str, Any] = operations.answer(*self._call(operations.user(user_id)))
        return result

    def preferences(self, user_id: str) -> dict[str, Any]:
        result: dict[str, Any] = operations.answer(*self._call(operations.preferences(user_id)))
        return result

    def set_preferences(self, user_id: str, choices: dict[str, bool]) -> dict[str, Any]:
        """``{"product_updates": False}``; essential categories cannot be turned off (422)."""
        call = operations.set_preferences(user_id, choices)
        result: dict[str, Any] = operations.answer(*self._call(call))
        return result
