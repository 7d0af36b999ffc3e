"""The console's stats page: per UTC day and category, sent, suppressed by reason and failed,
and unsubscribes by route, drawn as charts made here (inline SVG, no third-party host) from the
very figures of ``GET /v1/stats`` (:func:`notify.privacy.stats.daily`)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from notify.categories import CATEGORIES
from notify.models.base import utcnow
from notify.privacy import stats
from notify.web.console.common import console_page, gate
from notify.web.state import web_state

router = APIRouter(prefix="/console", include_in_schema=False)
SERIES = ("sent", "suppressed", "failed")
CHART_WIDTH, CHART_HEIGHT = 640, 160


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def charts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One chart per category: for each day of the range, its sent, suppressed and failed
    counts, and each bar's place and height in an SVG of CHART_WIDTH by CHART_HEIGHT."""
    first, last = date.fromisoformat(figures["from"]), date.fromisoformat(figures["to"])
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    totals: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: {day: dict.fromkeys(SERIES, 0) for day in days}
    )
    for row in figures["days"]:
        entry = totals[row["category"]][row["day"]]
        entry["sent"] += row["sent"]
        entry["failed"] += row["failed"]
        entry["suppressed"] += sum(row["suppressed"].values())
    result = []
    step = CHART_WIDTH / max(len(days), 1)
    for key, per_day in sorted(totals.items()):
        peak = max((sum(values.values()) for values in per_day.values()), default=0) or 1
        bars = []
        for index, day in enumerate(days):
            bottom = float(CHART_HEIGHT)
            for series in SERIES:
                height = per_day[day][series] * CHART_HEIGHT / peak
                bottom -= height
                if height:
                    bars.append(
                        {
                            "x": index * step,
                            "y": bottom,
                            "w": max(step - 1, 1),
                            "h": height,
                            "series": series,
                            "day": day,
                            "count": per_day[day][series],
                        }
                    )
        label = CATEGORIES[key].label if key in CATEGORIES else key
        result.append({"category": label, "bars": bars, "days": per_day, "peak": peak})
    return result


@router.get("/stats")
def stats_page(
    request: Request,
    start: Annotated[str, Query(alias="from")] = "",
    end: Annotated[str, Query(alias="to")] = "",
) -> Response:
    state = web_state(request)
    with state.sessions() as session:
        signed = gate(request, session)
        if isinstance(signed, Response):
            return signed
        try:
            first, last = stats.stats_range(_day(start), _day(end), utcnow().date())
            figures = stats.daily(session, first, last)
        except stats.RangeError as error:
            context: dict[str, Any] = {
                "problem": f"{error.field}: {error.msg}",
                "charts": [],
                "figures": None,
            }
            return console_page(request, "stats.html", context, signed=signed, status_code=400)
    context = {
        "figures": figures,
        "charts": charts(figures),
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
    }
    return console_page(request, "stats.html", context, signed=signed)
