"""A campaign's message as one person would get it, and who in its audience would get a
fallback, for the API, the console and the command line alike (nothing is sent or stored);
and a test of it sent to the operator's own address."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.utils import parseaddr

from sqlalchemy.orm import Session

from notify.campaigns.audience import FallbackReport, fallback_report
from notify.config import Settings
from notify.delivery.transport import make_transport
from notify.masking import mask_email
from notify.message.composing import preview_message
from notify.message.personal import PersonalFields
from notify.message.templates import get_template, personal_fields_for
from notify.models import Campaign, Recipient

SAMPLE_ADDRESS = "recipient@example.com"


@dataclass(frozen=True)
class CampaignPreview:
    message: Message
    lacks: tuple[str, ...]  # the personal fields this person lacks (their fallbacks were used)
    fallbacks: FallbackReport  # over the audience


def preview(
    session: Session,
    settings: Settings,
    campaign: Campaign,
    person: Recipient | None,
    *,
    as_sent: bool = False,
    with_personal_fields: bool = True,
    locale: str | None = None,
) -> CampaignPreview:
    """The message for ``person`` (None: a sample recipient with no personal fields). Unless
    ``as_sent`` (the operator's own terminal), the address is masked and the links are
    placeholders, so whoever sees the preview learns no address and gets no working link.
    Without ``with_personal_fields`` (a caller that may not read people) the person's first
    name, name and attributes are left out, as if they had none; ``lacks`` still says which
    they lack. ``locale`` shows the message as if it were the person's locale (each language
    of a campaign written in several). Raises ``jinja2.TemplateError`` if the content cannot be
    rendered for them."""
    held = person.personal_fields() if person is not None else PersonalFields()
    personal = held if with_personal_fields else PersonalFields()
    fields = personal_fields_for(get_template(campaign.template), campaign.data)
    address = person.email if person is not None and person.email else None
    message = preview_message(
        settings,
        template=campaign.template,
        data=campaign.data,
        email=(address if as_sent else mask_email(address)) if address else SAMPLE_ADDRESS,
        recipient_public_id=person.public_id if person is not None and as_sent else "preview",
        locale=locale or (person.locale if person is not None else None),
        personal=personal,
        time_zone=person.timezone if person is not None else None,
    )
    report = fallback_report(session, campaign, settings.default_subscriptions, fields)
    return CampaignPreview(message, held.lacking(fields), report)


def send_test(
    settings: Settings, campaign: Campaign, person: Recipient | None, to_address: str
) -> None:
    """Send the campaign's message, as ``person`` would get it, to ``to_address`` (the
    operator's own) over the configured relay, now and outside the queue. Its links are
    placeholders, so a test never unsubscribes anyone. Raises
    :class:`notify.delivery.transport.DeliveryError` when the relay refuses it."""
    category = get_template(campaign.template).category.key
    message = preview_message(
        settings,
        template=campaign.template,
        data=campaign.data,
        email=to_address,
        recipient_public_id="preview",
        locale=person.locale if person is not None else None,
        personal=person.personal_fields() if person is not None else PersonalFields(),
        time_zone=person.timezone if person is not None else None,
    )
    transport = make_transport(
        settings.smtp, timeout=settings.smtp_timeout_seconds, ca_file=settings.smtp_ca_file
    )
    try:
        sender = parseaddr(settings.sender_for(category))[1]
        transport.send(message, envelope_from=sender, envelope_to=to_address)
    finally:
        transport.close()
