"""The prevention dashboard for analysts and admins: aggregates only, small counts hidden.

Charts are inline SVG drawn on the server (no CDN, no script), each with the table behind
it; downloads as CSV carry exactly what the page shows (suppressed cells included), with
spreadsheet formulas neutralised.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_login import current_user

from outreach.statistics import Statistics, compute, shown
from signals.enums import Role
from signals.models import Municipality
from signals.rules import today_nl
from webapp.auth import roles_required
from webapp.db import get_session

bp = Blueprint("dashboard", __name__)
PERIODS = {"maand": 1, "kwartaal": 3, "jaar": 12}


def _period(args: Any, today: dt.date) -> tuple[dt.date, dt.date, str]:
    kind = args.get("periode", "jaar")
    if kind == "eigen":
        try:
            start = dt.date.fromisoformat(args.get("van", ""))
            end = dt.date.fromisoformat(args.get("tot", ""))
        except ValueError:
            abort(400, "van en tot zijn datums (JJJJ-MM-DD)")
        if end < start or (end - start).days > 3 * 366:
            abort(400, "kies een periode van hoogstens drie jaar, met tot na van")
        return start, end, kind
    months = PERIODS.get(kind, 12)
    first = (today.year * 12 + today.month - 1) - months + 1
    return dt.date(first // 12, first % 12 + 1, 1), today, kind if kind in PERIODS else "jaar"


def _statistics() -> tuple[Statistics, dict[str, Any]]:
    session = get_session()
    allowed = sorted(current_user.municipality_ids)
    municipalities = (
        session.query(Municipality)
        .filter(Municipality.id.in_(allowed))
        .order_by(Municipality.code)
        .all()
    )
    chosen = request.args.get("gemeente", "alle")
    ids = [m.id for m in municipalities if chosen in ("alle", m.code)]
    if not ids:
        abort(404)
    start, end, kind = _period(request.args, today_nl())
    population = current_app.extensions["vroegsignaal"].settings.population
    data = compute(session, ids, start, end, population)
    form = {"gemeente": chosen, "periode": kind, "van": start, "tot": end,
            "gemeenten": municipalities}  # fmt: skip
    return data, form


def bar_chart(labels: list[str], values: list[str], title: str) -> str:
    """A small inline SVG bar chart; suppressed values are drawn as gaps."""
    numbers = [int(v) if v.isdigit() else None for v in values]
    top = max([n for n in numbers if n is not None] or [1]) or 1
    width, height, bar = 640, 180, 600 / max(len(labels), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 30}" '
        f'role="img" aria-label="{title}" class="chart">'
    ]
    for i, (label, n) in enumerate(zip(labels, numbers, strict=True)):
        x = 30 + i * bar
        if n is not None and n > 0:
            h = height * n / top
            parts.append(
                f'<rect x="{x + 2:.1f}" y="{height - h:.1f}" width="{bar - 4:.1f}" '
                f'height="{h:.1f}"><title>{label}: {n}</title></rect>'
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height + 14}" text-anchor="middle">{label[2:]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


@bp.get("/dashboard")
@roles_required(Role.ANALYST, Role.ADMIN)
def dashboard() -> Any:
    data, form = _statistics()
    tables = [(t, shown(t)) for t in data.tables]
    monthly = next(rows for t, rows in tables if t.key == "per_maand")
    chart = bar_chart([r[0] for r in monthly], [r[1] for r in monthly], "Signalen per maand")
    return render_template("dashboard.html", data=data, tables=tables, form=form, chart=chart)


def _safe(cell: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a leading = + - @ tab or CR."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


@bp.get("/dashboard.csv")
@roles_required(Role.ANALYST, Role.ADMIN)
def dashboard_csv() -> Any:
    data, _ = _statistics()
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(["tabel", "regel", "kolom", "waarde"])
    for table in data.tables:
        for row in shown(table):
            for column, value in zip(table.columns[1:], row[1:], strict=True):
                writer.writerow([_safe(table.title), _safe(row[0]), _safe(column), _safe(value)])
    name = f"vroegsignalering-{'-'.join(data.municipalities)}-{data.start}-{data.end}.csv"
    return Response(
        "\ufeff" + buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/dashboard.xlsx")
@roles_required(Role.ANALYST, Role.ADMIN)
def dashboard_xlsx() -> Any:
    """The same tables as the page, one sheet each, small counts hidden as on the page."""
    from openpyxl import Workbook

    data, _ = _statistics()
    book = Workbook()
    book.remove(book.active)
    for table in data.tables:
        sheet = book.create_sheet(table.title[:31])
        sheet.append(table.columns)
        for row in shown(table):
            # Numbers stay numbers; any other text is neutralised like the CSV's.
            sheet.append([int(c) if c.isdigit() else _safe(c) for c in row])
        if table.note:
            sheet.append([])
            sheet.append([_safe(table.note)])
    buffer = io.BytesIO()
    book.save(buffer)
    name = f"vroegsignalering-{'-'.join(data.municipalities)}-{data.start}-{data.end}.xlsx"
    return Response(
        buffer.getvalue(),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
