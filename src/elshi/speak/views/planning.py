"""Speak's staff pages for planning and results: the approval queue, the content calendar, a
statement's reach (with who engages) and the rebuttal view."""

from __future__ import annotations

import calendar as cal
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from elshi.speak import service
from elshi.speak.views.common import STATUS_NAMES, _statement_or_404, router
from elshi.web.bounds import Id, parse_date
from elshi.web.deps import DbSession, StaffUser
from elshi.web.i18n import N_
from elshi.web.pages import int_or_none
from elshi.web.templating import render, translate


@router.get("/speak-queue")
def approval_queue(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """Statements waiting for this user's approval, oldest first."""
    rows = service.approval_queue(db=db, actor=principal)
    return render(
        request,
        "speak_queue.html",
        {
            "active": "speak",
            "statements": rows,
            "langs": {s.id: list(service.versions_of(db=db, statement_id=s.id)) for s in rows},
            "now": datetime.now(UTC),
        },
    )


@router.get("/speak-calendar")
def content_calendar(request: Request, db: DbSession, principal: StaffUser) -> Response:
    """A month of planned and published statements per mission."""
    month_text = request.query_params.get("month", "")
    error = None
    month = parse_date(month_text + "-01") if month_text else date.today()
    if month is None:
        error = translate(request, N_("The month must look like 2026-12."))
        month = date.today()
    mission_text = request.query_params.get("mission", "")
    mission_id = int_or_none(mission_text)
    days = service.calendar(db=db, actor=principal, mission_id=mission_id, month=month)
    weeks = cal.Calendar(firstweekday=0).monthdatescalendar(month.year, month.month)
    prev_month = (month.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    next_month = (month.replace(day=28) + timedelta(days=5)).strftime("%Y-%m")
    return render(
        request,
        "speak_calendar.html",
        {
            "active": "speak",
            "month": month,
            "weeks": weeks,
            "days": days,
            "missions": service.missions_for(db=db, actor=principal, permission="listen.read"),
            "mission_id": mission_id,
            "prev_month": prev_month,
            "next_month": next_month,
            "status_names": STATUS_NAMES,
            "error": error,
        },
        status=400 if error else 200,
    )


# ---------------------------------------------------------------------------- reach, rebuttal


@router.get("/speak/{statement_id}/reach")
def reach_page(request: Request, statement_id: Id, db: DbSession, principal: StaffUser) -> Response:
    """Engagement per publication, language and channel."""
    st = _statement_or_404(request, db, principal, statement_id)
    if isinstance(st, Response):
        return st
    aud = service.audience(db=db, statement_id=st.id)
    return render(
        request,
        "speak_reach.html",
        {
            "active": "speak",
            "st": st,
            "r": service.reach(db=db, statement_id=st.id),
            "status_names": STATUS_NAMES,
            "same": lambda value: value,
            "aud": aud,
            "audience_charts": _audience_charts(request, aud),
        },
    )


def _audience_charts(request: Request, aud: service.Audience) -> list[Any]:
    """Bar charts of engaging accounts by actor type: the statement, then each channel."""
    from elshi.watch.models import ACTOR_NAMES
    from elshi.web.charts import Chart, Series

    if not aud.accounts:
        return []
    labels = [translate(request, ACTOR_NAMES[t]) for t in aud.types]
    unknown = {translate(request, ACTOR_NAMES["unknown"])}
    series_name = translate(request, N_("accounts"))
    charts = [
        Chart(
            "audience",
            translate(request, N_("Who engages: accounts by actor type")),
            labels,
            [Series(series_name, [float(aud.total[t]) for t in aud.types])],
            kind="bar",
            highlight=unknown,
            label_heading=translate(request, N_("Actor type")),
        )
    ]
    for channel, counts in sorted(aud.by_channel.items()):
        charts.append(
            Chart(
                f"audience-{channel}",
                translate(request, N_("Who engages on %(channel)s")) % {"channel": channel},
                labels,
                [Series(series_name, [float(counts[t]) for t in aud.types])],
                kind="bar",
                highlight=unknown,
                label_heading=translate(request, N_("Actor type")),
            )
        )
    return charts


@router.get("/speak/{statement_id}/rebuttal")
def rebuttal_page(
    request: Request, statement_id: Id, db: DbSession, principal: StaffUser
) -> Response:
    """The answered topic's volume and negative share before and after the statement."""
    days_text = request.query_params.get("days", "3")
    days = int(days_text) if days_text.isdigit() and 1 <= int(days_text) <= 90 else 3
    st = _statement_or_404(request, db, principal, statement_id)
    if isinstance(st, Response):
        return st
    r = service.rebuttal(db=db, actor=principal, statement_id=st.id, days=days)
    peak = 1
    if r is not None:
        peak = max([1] + [n for _, n in r.before.daily] + [n for _, n in r.after.daily])
    return render(
        request,
        "speak_rebuttal.html",
        {"active": "speak", "st": st, "r": r, "days": days, "peak": peak},
    )
