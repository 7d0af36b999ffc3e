"""The callback endpoints a key registers: where to, which events, and the secrets that sign
them. Data functions take the session first and never commit.

URL rules: ``https://`` with a host and no user or password; outside development not a name
or address in a loopback, private, link-local, shared or reserved range (checked on
registration and again before each delivery, so a name that later resolves inward is refused).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.models import CallbackEndpoint
from notify.models.base import utcnow
from notify.producers.callbacks import signing
from notify.producers.callbacks.events import EventType

MAX_URL_LENGTH = 2000
MAX_ENDPOINTS_PER_KEY = 20
MAX_SECRETS = 2  # the newest and the one before it, while a receiver changes over


class CallbackUrlError(ValueError):
    """The URL may not receive callbacks; the message says why."""


class TooManyEndpointsError(ValueError):
    """The key has as many endpoints as it may have."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 one carries (mapped, 6to4, Teredo, NAT64, compatible)."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def inward(address: str) -> bool:
    """Whether ``address`` is not a public one: loopback, private, link-local, shared,
    reserved, multicast, or an IPv6 address that carries such an IPv4 one."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if not ip.is_global or ip.is_multicast:
        return True
    return isinstance(ip, ipaddress.IPv6Address) and any(
        not embedded.is_global for embedded in _embedded(ip)
    )


def public_address(host: str) -> str:
    """The address to connect to for ``host``: itself if it is an address, else the first it
    resolves to; raises :class:`CallbackUrlError` if it, or any address it resolves to, is not
    public. Delivery connects to exactly this address, so a name that resolves differently a
    moment later (DNS rebinding) cannot lead inward."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        if inward(str(literal)):
            raise CallbackUrlError("points at a loopback or private address")
        return str(literal)
    try:
        found = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise CallbackUrlError("has a host name that does not resolve") from None
    addresses = [str(entry[4][0]) for entry in found]
    if not addresses or any(inward(address) for address in addresses):
        raise CallbackUrlError("resolves to a loopback or private address")
    return addresses[0].split("%")[0]


def address_problem(host: str) -> str | None:
    """Why ``host`` may not receive callbacks outside development, or None."""
    try:
        public_address(host)
    except CallbackUrlError as error:
        return str(error)
    return None


def checked_url(url: str, *, development: bool) -> str:
    """``url`` if it may receive callbacks; raises :class:`CallbackUrlError` otherwise. In
    development ``http://`` and addresses on this machine are allowed too."""
    if len(url) > MAX_URL_LENGTH:
        raise CallbackUrlError(f"is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise CallbackUrlError("is not a valid URL") from None
    allowed = ("https", "http") if development else ("https",)
    if parts.scheme not in allowed or not host:
        raise CallbackUrlError(
            "must be an absolute https:// URL"
            + (" (or http:// in development)" if development else "")
        )
    if parts.username or parts.password:
        raise CallbackUrlError("must not hold a user name or password")
    if any(ord(character) < 33 for character in url):
        raise CallbackUrlError("must not hold spaces or control characters")
    if not development:
        problem = address_problem(host)
        if problem is not None:
            raise CallbackUrlError(problem)
    return url


def checked_events(events: Iterable[str]) -> list[str]:
    wanted = sorted(set(events))
    known = {event.value for event in EventType}
    unknown = [event for event in wanted if event not in known]
    if unknown or not wanted:
        raise ValueError(f"must name one or more of {', '.join(sorted(known))}")
    return wanted


def register(
    session: Session, api_key_id: int, url: str, events: Sequence[str]
) -> tuple[CallbackEndpoint, str]:
    """A new endpoint for the key and its first secret (shown once, stored encrypted)."""
    count = len(active_for(session, api_key_id))
    if count >= MAX_ENDPOINTS_PER_KEY:
        raise TooManyEndpointsError(f"a key may have at most {MAX_ENDPOINTS_PER_KEY} endpoints")
    secret = signing.new_secret()
    endpoint = CallbackEndpoint(
        api_key_id=api_key_id, url=url, events=list(events), secrets={"secrets": [secret]}
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def active_for(session: Session, api_key_id: int) -> Sequence[CallbackEndpoint]:
    return session.scalars(
        select(CallbackEndpoint)
        .where(CallbackEndpoint.api_key_id == api_key_id, CallbackEndpoint.disabled_at.is_(None))
        .order_by(CallbackEndpoint.id)
    ).all()


def owned(session: Session, api_key_id: int, endpoint_id: int) -> CallbackEndpoint | None:
    """The key's own live endpoint, or None (another key's looks the same as none)."""
    endpoint = session.get(CallbackEndpoint, endpoint_id)
    if endpoint is None or endpoint.api_key_id != api_key_id or endpoint.disabled_at is not None:
        return None
    return endpoint


def secrets_of(endpoint: CallbackEndpoint) -> list[str]:
    """The endpoint's signing secrets, oldest first."""
    return listed_secrets(endpoint.secrets)


def listed_secrets(value: dict[str, Any] | None) -> list[str]:
    """The signing secrets in an endpoint's decrypted ``secrets`` value, oldest first."""
    return [str(secret) for secret in (value or {}).get("secrets", [])]


def rotate(endpoint: CallbackEndpoint) -> str:
    """A new secret; the newest before it stays valid beside it until the next rotation or
    :func:`retire_previous`. Deliveries are signed with both."""
    secret = signing.new_secret()
    endpoint.secrets = {"secrets": [*secrets_of(endpoint)[-(MAX_SECRETS - 1) :], secret]}
    return secret


def retire_previous(endpoint: CallbackEndpoint) -> None:
    """Only the newest secret signs from now on."""
    endpoint.secrets = {"secrets": secrets_of(endpoint)[-1:]}


def disable(endpoint: CallbackEndpoint) -> None:
    """No more events for it; what it was sent stays listed."""
    endpoint.disabled_at = utcnow()
