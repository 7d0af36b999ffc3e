"""Typed ORM models, one module per aggregate. Import from here."""

from notify.models.api_keys import ApiKey
from notify.models.base import Base
from notify.models.callbacks import (
    CallbackAttempt,
    CallbackEndpoint,
    CallbackEvent,
    CallbackEventStatus,
)
from notify.models.campaigns import BatchStatus, Campaign, CampaignBatch, CampaignStatus
from notify.models.decisions import NotificationDecision
from notify.models.idempotency_keys import IdempotencyKey
from notify.models.notifications import Notification, NotificationStatus
from notify.models.operators import AuditEntry, Operator, OperatorRole
from notify.models.preferences import (
    ConsentEvent,
    ConsentSource,
    Pause,
    Preference,
    SoftBounce,
    Suppression,
    SuppressionReason,
)
from notify.models.recipients import Recipient
from notify.models.scanners import PagePress, ScannerHold
from notify.models.stats import CountedHour, DailyCount

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "BatchStatus",
    "CallbackAttempt",
    "CallbackEndpoint",
    "CallbackEvent",
    "CallbackEventStatus",
    "Campaign",
    "CampaignBatch",
    "CampaignStatus",
    "ConsentEvent",
    "ConsentSource",
    "CountedHour",
    "DailyCount",
    "IdempotencyKey",
    "Notification",
    "NotificationDecision",
    "NotificationStatus",
    "Operator",
    "OperatorRole",
    "PagePress",
    "Pause",
    "Preference",
    "Recipient",
    "ScannerHold",
    "SoftBounce",
    "Suppression",
    "SuppressionReason",
]
