"""Link scanners that press the unsubscribe page's button: see their bursts, flag them, and ask
their source for a confirmation for a while.

Only presses of the page's own button are guarded (``via=page``, ``scope=all``). An RFC 8058
one-click POST from a mail client is always honoured at once, and nobody is ever subscribed
again without their own action: a press honoured before its burst was seen stays honoured and is
only flagged.

The rule:

* A press is *early* when the person's latest message of the category was sent at most
  ``NOTIFY_SCANNER_EARLY_SECONDS`` before it (scanners press within seconds of delivery).
* A *burst* is, within ``NOTIFY_SCANNER_BURST_SECONDS``, early presses for at least
  ``NOTIFY_SCANNER_BURST_PER_NETWORK`` different people from one network (an IPv4 /24 or IPv6
  /48), or ``NOTIFY_SCANNER_BURST_PER_DOMAIN`` different people whose addresses share a domain.
* When a press completes a burst, every press of that burst gets a ``suspected_automated``
  consent event (the honoured ones) and the source is *held* for ``NOTIFY_SCANNER_HOLD_MINUTES``:
  a press from a held network or domain changes nothing, is logged ``held_for_confirmation``, and
  the page asks for an explicit confirmation (a ticked box), which is then honoured.

Sources are kept as keyed hashes (``NOTIFY_HASH_KEY``) of the network and the domain, never an
IP address or an address; presses are read for the burst window only and deleted by the
hourly retention run once an hour old. A press whose network or domain is unknown is not
counted for it.

Data functions take the session first and never commit.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from notify.config import Settings
from notify.db import insert_on_conflict, on_postgresql
from notify.models import ConsentSource, Notification, NotificationStatus, PagePress, ScannerHold
from notify.people import consent
from notify.people.consent import HELD, SUSPECTED, Origin

NETWORK, DOMAIN = "network", "domain"
IPV4_PREFIX, IPV6_PREFIX = 24, 48
UNKNOWN = "unknown"  # a client address that is missing or not an IP address


@dataclass(frozen=True)
class Limits:
    """The thresholds, from the settings of the same names (see the module's docstring)."""

    burst_seconds: int
    per_network: int
    per_domain: int
    early_seconds: int
    hold_minutes: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            burst_seconds=settings.scanner_burst_seconds,
            per_network=settings.scanner_burst_per_network,
            per_domain=settings.scanner_burst_per_domain,
            early_seconds=settings.scanner_early_seconds,
            hold_minutes=settings.scanner_hold_minutes,
        )


@dataclass(frozen=True)
class Source:
    """Where a press came from, as keyed hashes."""

    network_key: str
    domain_key: str


def _keyed(hash_key: str, text: str) -> str:
    return hmac.new(hash_key.encode(), text.encode(), hashlib.sha256).hexdigest()


def network_of(client_ip: str | None) -> str:
    """The network a client address belongs to (its /24 or /48), or ``unknown``."""
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def source_of(hash_key: str, client_ip: str | None, address: str | None) -> Source:
    """The press's source; a key is empty where it is unknown (no client address, no
    domain), and an empty key is never counted or held."""
    network = network_of(client_ip)
    domain = address.rsplit("@", 1)[-1].strip().lower() if address and "@" in address else ""
    return Source(
        network_key="" if network == UNKNOWN else _keyed(hash_key, f"network:{network}"),
        domain_key=_keyed(hash_key, f"domain:{domain}") if domain else "",
    )


def held(session: Session, source: Source, now: datetime) -> str | None:
    """``network`` or ``domain`` if presses from ``source`` must be confirmed now, else None."""
    keys = [key for key in (source.network_key, source.domain_key) if key]
    kind = session.scalar(
        select(ScannerHold.kind)
        .where(
            ScannerHold.source_key.in_(keys),
            ScannerHold.until > now,
        )
        .limit(1)
    )
    return None if kind is None else str(kind)


def is_early(
    session: Session, recipient_id: int, category: str, now: datetime, limits: Limits
) -> bool:
    """Whether a press at ``now`` came soon enough after the person's latest message of
    ``category`` (the link's) was sent to count toward a burst."""
    if limits.early_seconds == 0:
        return True
    last_sent = session.scalar(
        select(func.max(Notification.sent_at)).where(
            Notification.recipient_id == recipient_id,
            Notification.category == category,
            Notification.status == NotificationStatus.SENT,
        )
    )
    return last_sent is not None and now - last_sent <= timedelta(seconds=limits.early_seconds)


def record_press(
    session: Session,
    recipient_id: int,
    category: str,
    source: Source,
    *,
    early: bool,
    honoured: bool,
    now: datetime,
    limits: Limits,
) -> list[str]:
    """Record one press of the page's button for ``category`` and act on a burst it completes
    (see the module's docstring); returns the kinds of source (``network``, ``domain``) found
    bursting. ``early`` is :func:`is_early` for the link's category; ``honoured`` is whether
    the press unsubscribed the person from ``category`` (a press that changed nothing, or was
    held, counts toward a burst but is never logged as a suspected unsubscribe).

    On PostgreSQL the press takes a transaction lock on its network and its domain first
    (always in that order), so presses arriving together are counted one after the other and
    none of a burst is missed; SQLite lets one writer in at a time anyway. Old presses are
    not deleted here (retention does it): the counts read only the window."""
    if on_postgresql(session):
        for key in (source.network_key, source.domain_key):
            if key:
                session.execute(select(func.pg_advisory_xact_lock(_lock_id(key))))
    session.add(
        PagePress(
            at=now,
            recipient_id=recipient_id,
            category=category,
            network_key=source.network_key,
            domain_key=source.domain_key,
            early=early,
            honoured=honoured,
        )
    )
    session.flush()
    window_start = now - timedelta(seconds=limits.burst_seconds)
    bursts = []
    for kind, column, key, threshold in (
        (NETWORK, PagePress.network_key, source.network_key, limits.per_network),
        (DOMAIN, PagePress.domain_key, source.domain_key, limits.per_domain),
    ):
        if not key:  # an unknown network: every such press would seem to share one
            continue
        people = session.scalar(
            select(func.count(func.distinct(PagePress.recipient_id))).where(
                column == key, PagePress.early.is_(True), PagePress.at >= window_start
            )
        )
        if int(people or 0) >= threshold:
            bursts.append(kind)
            _flag(session, kind, column == key, key, now, window_start, limits)
    return bursts


def _lock_id(key: str) -> int:
    """A 63-bit advisory-lock number from a source's hex key."""
    return int(key[:15], 16)


def _flag(
    session: Session,
    kind: str,
    same_source: ColumnElement[bool],
    key: str,
    now: datetime,
    window_start: datetime,
    limits: Limits,
) -> None:
    """Log every honoured early press of the burst not logged yet as suspected automated (dated
    when the burst is seen, seconds after the press), and hold the source."""
    # Marking them flagged and reading them is one statement, so of two presses that both
    # complete a burst at once only one logs each press (the rows' locks decide).
    presses = session.execute(
        update(PagePress)
        .where(
            same_source,
            PagePress.early.is_(True),
            PagePress.flagged.is_(False),
            PagePress.at >= window_start,
        )
        .values(flagged=True)
        .returning(PagePress.recipient_id, PagePress.category, PagePress.honoured)
        .execution_options(synchronize_session=False)
    ).all()
    origin = Origin(ConsentSource.PAGE)
    for recipient_id, category, honoured in presses:
        if honoured:
            consent.record(session, recipient_id, category, SUSPECTED, origin, f"burst: {kind}")
    if limits.hold_minutes:
        until = now + timedelta(minutes=limits.hold_minutes)
        upsert = insert_on_conflict(session, ScannerHold).values(
            source_key=key, kind=kind, until=until
        )
        session.execute(
            upsert.on_conflict_do_update(
                index_elements=["source_key"], set_={"until": until, "kind": kind}
            )
        )


def log_held(session: Session, recipient_id: int, category: str, kind: str) -> None:
    """A press from a held source, answered with a request to confirm: logged, nothing changed."""
    consent.record(session, recipient_id, category, HELD, Origin(ConsentSource.PAGE), kind)
