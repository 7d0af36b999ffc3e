"""Turns a claimed notification into the message to send: layout context, render, MIME. Pure."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime
from typing import Any

from notify.categories import Category, get_category
from notify.config import Settings
from notify.i18n.catalogues import gettext
from notify.i18n.locales import FALLBACK_LOCALE
from notify.message import links, localised
from notify.message.jobs import Claimed
from notify.message.mime import (
    ascii_address,
    build_message,
    encode_body_line,
    has_header_break,
    needs_smtputf8,
    new_message_id,
    written_verbatim,
)
from notify.message.personal import PersonalFields
from notify.message.rendering import LayoutContext, RenderedEmail, render
from notify.message.templates import get_template, personal_fields_for


def layout_context(
    settings: Settings,
    category: Category,
    *,
    preferences_url: str,
    unsubscribe_url: str | None,
    locale: str = FALLBACK_LOCALE,
    time_zone: str | None = None,
) -> LayoutContext:
    """The layout's part of a message in shipped ``locale``, in ``time_zone`` (the person's,
    else the service's default zone)."""
    why = category.why_always_on
    return LayoutContext(
        company_name=settings.company_name,
        postal_address=settings.postal_address,
        category_label=gettext(locale, category.label_in_text),
        essential=category.essential,
        why_always_on=gettext(locale, why) if why else "",
        preferences_url=preferences_url,
        unsubscribe_url=None if category.essential else unsubscribe_url,
        locale=locale,
        time_zone=time_zone or settings.default_timezone,
    )


def compose(settings: Settings, job: Claimed, *, now: datetime) -> Message:
    """The message for ``job``; raises Jinja, template or header errors for a bad template.
    Written in the language :func:`notify.message.localised.choose` picks for the person."""
    category = get_category(job.category)
    language = localised.choose(
        get_template(job.template), job.data, job.locale, settings.default_locale
    )
    unsubscribe = (
        None
        if category.essential
        else links.unsubscribe_url(settings, job.recipient_public_id, category.key, job.campaign_id)
    )
    layout = layout_context(
        settings,
        category,
        preferences_url=links.preferences_url(settings, job.recipient_public_id),
        unsubscribe_url=unsubscribe,
        locale=language.locale,
        time_zone=job.time_zone,
    )
    rendered = render(job.template, language.data, layout, personal=job.personal)
    mailto = (
        None
        if category.essential
        else links.unsubscribe_mailto(
            settings, job.recipient_public_id, category.key, job.campaign_id
        )
    )
    return build_message(
        rendered,
        sender=settings.sender_for(category.key),
        recipient=job.email or "",
        message_id=job.message_id,
        date=now,
        unsubscribe_url=unsubscribe,
        list_id=None if category.essential else list_id(settings, category),
        content_language=language.content,
        unsubscribe_mailto=mailto,
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
    personal: PersonalFields | None = None,
    time_zone: str | None = None,
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
        personal=personal or PersonalFields(),
        time_zone=time_zone,
    )
    return compose(settings, job, now=datetime.now(UTC))


UNSUBSCRIBE_SLOT = "https://slot.invalid/unsubscribe-4d1f9c"
PREFERENCES_SLOT = "https://slot.invalid/preferences-8b2e07"


SLOT_TO = "notify-slot-to@slot.invalid"
SLOT_MAILTO = "notify-slot-mailto@slot.invalid"
SLOT_MESSAGE_ID = "<notify-slot-message-id@slot.invalid>"
SLOT_DATE = datetime(2000, 1, 1, tzinfo=UTC)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
MAX_RENDERINGS_KEPT = 1024  # distinct (language, zone, personal values) renderings a batch keeps
_Key = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class _Serialised:
    """A campaign message for one locale, serialised once with placeholders: the header block,
    and the body with a marker for each line that holds a person's link."""

    head: bytes
    body: bytes
    lines: dict[bytes, str]  # marker -> the line, with the link slots in it


class BatchComposer:
    """Composes one campaign's messages: renders once per language (and per distinct value of
    the personal fields the template reads, and per time zone if it writes a date or time)
    with placeholder links, then puts each person's own links in. Pure; what it builds equals
    :func:`compose`'s output.

    :meth:`raw` goes further: it serialises each language's message once, with placeholders for
    what differs per person (To, Date, Message-ID, the unsubscribe and preference links), and
    fills them in as bytes; only the body lines that hold a link are encoded per person.

    A template that does not show both links verbatim in both parts (a filter on the URL, say)
    falls back to a full render per message; an address or Message-ID that would not be
    written verbatim (non-ASCII, too long for one line) falls back to :meth:`message`.
    """

    def __init__(self, settings: Settings, template: str, category: str, data: dict[str, Any]):
        self.settings = settings
        self.template = template
        self.category = get_category(category)
        self.data = data
        # The person's fields the template reads: people whose values there are equal share
        # a rendering (a template that reads none renders once per locale).
        self.email_template = get_template(template)
        self.personal_fields = personal_fields_for(self.email_template, data)
        self._languages: dict[str | None, localised.Language] = {}
        self._skeletons: dict[_Key, RenderedEmail | None] = {}
        self._serialised: dict[_Key, _Serialised | None] = {}
        self.sender = settings.sender_for(category)
        self.list_id = None if self.category.essential else list_id(settings, self.category)

    def _language(self, job: Claimed) -> localised.Language:
        if job.locale not in self._languages:
            self._languages[job.locale] = localised.choose(
                self.email_template, self.data, job.locale, self.settings.default_locale
            )
        return self._languages[job.locale]

    def _mailto(self, job: Claimed) -> str | None:
        return links.unsubscribe_mailto(
            self.settings, job.recipient_public_id, self.category.key, job.campaign_id
        )

    def _time_zone(self, job: Claimed) -> str:
        if not self.email_template.reads_time_zone:
            return ""  # one rendering serves every zone
        return job.time_zone or self.settings.default_timezone

    def _key(self, job: Claimed) -> _Key:
        personal = job.personal.key(self.personal_fields)
        return self._language(job).content, self._time_zone(job), personal

    def _skeleton(self, job: Claimed) -> RenderedEmail | None:
        key = self._key(job)
        if key not in self._skeletons:
            if len(self._skeletons) >= MAX_RENDERINGS_KEPT:
                self._skeletons.clear()
                self._serialised.clear()
            language = self._language(job)
            layout = layout_context(
                self.settings,
                self.category,
                preferences_url=PREFERENCES_SLOT,
                unsubscribe_url=UNSUBSCRIBE_SLOT,
                locale=language.locale,
                time_zone=key[1] or None,
            )
            rendered = render(self.template, language.data, layout, personal=job.personal)
            usable = all(
                slot in part
                for slot in (UNSUBSCRIBE_SLOT, PREFERENCES_SLOT)
                for part in (rendered.text, rendered.html)
            ) and not any(slot in rendered.subject for slot in (UNSUBSCRIBE_SLOT, PREFERENCES_SLOT))
            self._skeletons[key] = rendered if usable else None
        return self._skeletons[key]

    def message(self, job: Claimed, *, now: datetime) -> Message:
        skeleton = self._skeleton(job)
        if skeleton is None or self.category.essential:
            return compose(self.settings, job, now=now)
        unsubscribe = links.unsubscribe_url(
            self.settings, job.recipient_public_id, self.category.key, job.campaign_id
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
            content_language=self._language(job).content,
            unsubscribe_mailto=self._mailto(job),
        )

    def raw(self, job: Claimed, *, now: datetime) -> bytes:
        """The bytes of :meth:`message` for ``job`` (equal once parsed, up to the MIME
        boundary), built by filling in a serialised skeleton."""
        serialised = self._serialised_for(job)
        to = ascii_address(job.email or "")
        if (
            serialised is None
            or not written_verbatim(to)
            or needs_smtputf8(to)
            or has_header_break(to)
            or not written_verbatim(job.message_id)
            or has_header_break(job.message_id)
        ):
            return self.message(job, now=now).as_bytes()
        unsubscribe = links.unsubscribe_url(
            self.settings, job.recipient_public_id, self.category.key, job.campaign_id
        )
        preferences = links.preferences_url(self.settings, job.recipient_public_id)
        head = (
            serialised.head.replace(SLOT_TO.encode(), to.encode())
            .replace(format_datetime(SLOT_DATE).encode(), format_datetime(now).encode())
            .replace(SLOT_MESSAGE_ID.encode(), job.message_id.encode())
            .replace(UNSUBSCRIBE_SLOT.encode(), unsubscribe.encode())
        )
        mailto = self._mailto(job)
        if mailto is not None:
            head = head.replace(SLOT_MAILTO.encode(), mailto.encode())
        body = serialised.body
        for marker, line in serialised.lines.items():
            filled = line.replace(UNSUBSCRIBE_SLOT, unsubscribe).replace(
                PREFERENCES_SLOT, preferences
            )
            encoded = encode_body_line(filled).replace("\n", "\r\n").encode("ascii")
            body = body.replace(marker, encoded)
        return head + body

    def _serialised_for(self, job: Claimed) -> _Serialised | None:
        key = self._key(job)
        skeleton = self._skeleton(job)  # first: it may empty both caches
        if key not in self._serialised:
            self._serialised[key] = (
                None
                if skeleton is None or self.category.essential
                else self._serialise(skeleton, self._language(job).content)
            )
        return self._serialised[key]

    def _serialise(self, skeleton: RenderedEmail, content_language: str) -> _Serialised | None:
        lines: dict[bytes, str] = {}
        tag = secrets.token_hex(6)

        def mark(part: str) -> str:
            pieces = _LINE_BREAK.split(part)
            breaks = [*_LINE_BREAK.findall(part), ""]
            out: list[str] = []
            for piece, line_break in zip(pieces, breaks, strict=True):
                if UNSUBSCRIBE_SLOT in piece or PREFERENCES_SLOT in piece:
                    marker = f"NOTIFYLINE{tag}X{len(lines):05d}"
                    lines[marker.encode()] = piece
                    piece = marker
                out.append(piece + line_break)
            return "".join(out)

        marked = RenderedEmail(skeleton.subject, mark(skeleton.text), mark(skeleton.html))
        raw = build_message(
            marked,
            sender=self.sender,
            recipient=SLOT_TO,
            message_id=SLOT_MESSAGE_ID,
            date=SLOT_DATE,
            unsubscribe_url=UNSUBSCRIBE_SLOT,
            list_id=self.list_id,
            content_language=content_language,
            unsubscribe_mailto=SLOT_MAILTO if self.settings.inbound_domain else None,
        ).as_bytes()
        end_of_head = raw.find(b"\r\n\r\n") + 2
        head, body = raw[:end_of_head], raw[end_of_head:]
        placeholders = [SLOT_TO, SLOT_MESSAGE_ID, format_datetime(SLOT_DATE), UNSUBSCRIBE_SLOT]
        if self.settings.inbound_domain:
            placeholders.append(SLOT_MAILTO)
        if any(head.count(slot.encode()) != 1 for slot in placeholders) or any(
            body.count(marker) != 1 for marker in lines
        ):
            return None  # a placeholder was folded or encoded: build each message in full
        return _Serialised(head, body, lines)
