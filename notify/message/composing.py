"""Turns a claimed notification into the message to send: layout context, render, MIME. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import Message
from typing import Any

from notify.categories import Category, get_category
from notify.config import Settings
from notify.message import links
from notify.message.jobs import Claimed
from notify.message.mime import build_message, new_message_id
from notify.message.rendering import LayoutContext, RenderedEmail, render
from notify.message.templates import get_template


def layout_context(
    settings: Settings,
    category: Category,
    *,
    preferences_url: str,
    unsubscribe_url: str | None,
    locale: str | None = None,
) -> LayoutContext:
    return LayoutContext(
        company_name=settings.company_name,
        postal_address=settings.postal_address,
        category_label=category.label,
        essential=category.essential,
        why_always_on=category.why_always_on,
        preferences_url=preferences_url,
        unsubscribe_url=None if category.essential else unsubscribe_url,
        locale=(locale or "en").split("-")[0],
    )


def compose(settings: Settings, job: Claimed, *, now: datetime) -> Message:
    """The message for ``job``; raises Jinja, template or header errors for a bad template."""
    category = get_category(job.category)
    unsubscribe = (
        None
        if category.essential
        else links.unsubscribe_url(settings, job.recipient_public_id, category.key)
    )
    layout = layout_context(
        settings,
        category,
        preferences_url=links.preferences_url(settings, job.recipient_public_id),
        unsubscribe_url=unsubscribe,
        locale=job.locale,
    )
    rendered = render(job.template, job.data, layout)
    return build_message(
        rendered,
        sender=settings.sender_for(category.key),
        recipient=job.email or "",
        message_id=job.message_id,
        date=now,
        unsubscribe_url=unsubscribe,
        list_id=None if category.essential else list_id(settings, category),
    )


def list_id(settings: Settings, category: Category) -> str:
    """RFC 2919 List-Id: one list per non-essential category, on the sending domain."""
    return f"{category.label} <{category.key.replace('_', '-')}.{settings.sending_domain}>"


def preview_message(
    settings: Settings,
    *,
    template: str,
    data: dict[str, Any],
    email: str,
    recipient_public_id: str,
    locale: str | None = None,
) -> Message:
    """What ``compose`` would build for this person, without a stored notification."""
    job = Claimed(
        id="preview",
        template=template,
        category=get_template(template).category.key,
        data=data,
        attempts=0,
        message_id=new_message_id(settings.sending_domain),
        email=email,
        recipient_id=0,
        recipient_public_id=recipient_public_id,
        locale=locale,
        erased=False,
    )
    return compose(settings, job, now=datetime.now(UTC))


UNSUBSCRIBE_SLOT = "https://slot.invalid/unsubscribe-4d1f9c"
PREFERENCES_SLOT = "https://slot.invalid/preferences-8b2e07"


class BatchComposer:
    """Composes one campaign's messages: renders once per locale with placeholder links, then
    puts each person's own links in. Pure; what it builds equals :func:`compose`'s output.

    A template that does not show both links verbatim in both parts (a filter on the URL, say)
    falls back to a full render per message.
    """

    def __init__(self, settings: Settings, template: str, category: str, data: dict[str, Any]):
        self.settings = settings
        self.template = template
        self.category = get_category(category)
        self.data = data
        self._skeletons: dict[str, RenderedEmail | None] = {}
        self.sender = settings.sender_for(category)
        self.list_id = None if self.category.essential else list_id(settings, self.category)

    def _skeleton(self, locale: str | None) -> RenderedEmail | None:
        key = (locale or "en").split("-")[0]
        if key not in self._skeletons:
            layout = layout_context(
                self.settings,
                self.category,
                preferences_url=PREFERENCES_SLOT,
                unsubscribe_url=UNSUBSCRIBE_SLOT,
                locale=key,
            )
            rendered = render(self.template, self.data, layout)
            usable = all(
                slot in part
                for slot in (UNSUBSCRIBE_SLOT, PREFERENCES_SLOT)
                for part in (rendered.text, rendered.html)
            ) and not any(slot in rendered.subject for slot in (UNSUBSCRIBE_SLOT, PREFERENCES_SLOT))
            self._skeletons[key] = rendered if usable else None
        return self._skeletons[key]

    def message(self, job: Claimed, *, now: datetime) -> Message:
        skeleton = self._skeleton(job.locale)
        if skeleton is None or self.category.essential:
            return compose(self.settings, job, now=now)
        unsubscribe = links.unsubscribe_url(
            self.settings, job.recipient_public_id, self.category.key
        )
        preferences = links.preferences_url(self.settings, job.recipient_public_id)

        def fill(part: str) -> str:
            return part.replace(UNSUBSCRIBE_SLOT, unsubscribe).replace(
                PREFERENCES_SLOT, preferences
            )

        rendered = RenderedEmail(skeleton.subject, fill(skeleton.text), fill(skeleton.html))
        return build_message(
            rendered,
            sender=self.sender,
            recipient=job.email or "",
            message_id=job.message_id,
            date=now,
            unsubscribe_url=unsubscribe,
            list_id=self.list_id,
        )
