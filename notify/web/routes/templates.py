"""``/v1/templates``: what can be sent, its category and the variables it needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from notify.message.templates import catalogue
from notify.producers.api_keys import Caller
from notify.web.auth import current_caller
from notify.web.responses import API_ERRORS
from notify.web.schemas import TemplateOut

router = APIRouter(prefix="/v1/templates", tags=["templates"], responses=API_ERRORS)


@router.get("", response_model=list[TemplateOut])
def list_templates(_: Annotated[Caller, Depends(current_caller)]) -> list[TemplateOut]:
    return [
        TemplateOut(
            name=template.name,
            category=template.category.key,
            essential=template.category.essential,
            description=template.description,
            variables=list(template.variables),
            optional_variables=list(template.optional_variables),
            recipient_fields=sorted(template.personal_fields),
            translatable_variables=list(template.personalised_variables),
        )
        for template in catalogue().values()
    ]
