"""Presses of the unsubscribe page's button, kept briefly to see bursts that no person makes,
and the sources held for confirmation after one (notify.people.scanner_guard holds the rule)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base, utcnow


class PagePress(Base):
    """One press, by keyed hashes of where it came from (never the address or the IP)."""

    __tablename__ = "page_presses"
    __table_args__ = (
        Index("ix_page_presses_network_at", "network_key", "at"),
        Index("ix_page_presses_domain_at", "domain_key", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(50))
    network_key: Mapped[str] = mapped_column(String(64))
    domain_key: Mapped[str] = mapped_column(String(64))
    early: Mapped[bool]  # soon enough after the person's message was sent to count
    honoured: Mapped[bool]  # it unsubscribed them (False: held for a confirmation)
    flagged: Mapped[bool] = mapped_column(default=False)  # logged as suspected automated


class ScannerHold(Base):
    """A source (network or domain key) whose presses must be confirmed until ``until``."""

    __tablename__ = "scanner_holds"

    source_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # network or domain
    until: Mapped[datetime]
