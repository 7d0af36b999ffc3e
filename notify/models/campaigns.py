"""Campaigns and their batches. Each recipient of a campaign gets one notification row, unique
per (campaign, recipient), so a resumed or re-run campaign never mails anyone twice."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from notify.models.base import Base, enum_column_type, utcnow


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NEEDS_CONFIRMATION = "needs_confirmation"  # became due too late (after downtime)
    NEEDS_ATTENTION = "needs_attention"  # paused itself: too many complaints or hard bounces


class BatchStatus(StrEnum):
    PENDING = "pending"  # planned; waits to be due, or was released by a pause
    ENQUEUED = "enqueued"  # a task for it is on the bulk queue
    RUNNING = "running"  # a worker holds its lease
    DONE = "done"


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_status_start_at", "status", "start_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(50))
    data: Mapped[dict[str, Any]]
    audience: Mapped[dict[str, Any]]
    send_at: Mapped[datetime | None]
    send_at_local: Mapped[str | None] = mapped_column(String(32))
    rate_limit: Mapped[float | None] = mapped_column(Float)
    status: Mapped[CampaignStatus] = mapped_column(
        enum_column_type(CampaignStatus, "campaign_status"), default=CampaignStatus.DRAFT
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    # Complaints and bounces count from here (set when an operator resumes a campaign that
    # paused itself: what made it pause is not held against it twice)
    health_from: Mapped[datetime | None]
    start_at: Mapped[datetime | None]  # earliest moment any of its messages is due
    planned_through: Mapped[int] = mapped_column(Integer, default=0)  # recipient id cursor
    planning_done: Mapped[bool] = mapped_column(default=False)
    # When planning began: every message of the campaign carries it as its created_at.
    planned_at: Mapped[datetime | None]
    batches_planned: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CampaignBatch(Base):
    __tablename__ = "campaign_batches"
    __table_args__ = (
        UniqueConstraint("campaign_id", "batch_no"),
        Index("ix_campaign_batches_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    batch_no: Mapped[int]
    status: Mapped[BatchStatus] = mapped_column(
        enum_column_type(BatchStatus, "batch_status"), default=BatchStatus.PENDING
    )
    due_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
