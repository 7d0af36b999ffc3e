"""A typed Python client for producers: ``NotifyClient`` (sync) and ``AsyncNotifyClient``, on
httpx, and ``verify_callback`` for the status callbacks notify sends.

    from notify.client import NotifyClient

    with NotifyClient("https://notify.example.com", api_key) as notify:
        accepted = notify.send("security_alert", "u-42", data={...}, email="ada@example.com")
        notify.notification(accepted.id).status

``send`` makes an idempotency key when none is given and keeps it for every retry, so a
request that reached the service before its answer was lost is not sent twice. Retries
(429, 5xx, connection errors and timeouts) wait with exponential backoff and jitter, or as
long as ``Retry-After`` says.
"""

from notify.client.asynchronous import AsyncNotifyClient
from notify.client.callbacks import InvalidCallbackError, verify_callback
from notify.client.errors import NotifyError, NotifyUnavailableError
from notify.client.models import Accepted, NotificationState
from notify.client.retrying import RetryPolicy
from notify.client.sync import NotifyClient

__all__ = [
    "Accepted",
    "AsyncNotifyClient",
    "InvalidCallbackError",
    "NotificationState",
    "NotifyClient",
    "NotifyError",
    "NotifyUnavailableError",
    "RetryPolicy",
    "verify_callback",
]
