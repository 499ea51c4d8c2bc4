"""The prevention dashboard for analysts and admins: aggregates only, small counts hidden.

Charts are inline SVG drawn on the server (no CDN, no script), each with the table behind
it; downloads as CSV carry exactly what the page shows (suppressed cells included), with
spreadsheet formulas neutralised.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import escape

from outreach.statistics import NATIONAL_SIGNALS_PER_1000_MONTH, Statistics, compute, shown
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
            abort(400, _("van en tot zijn datums (JJJJ-MM-DD)"))
        if end < start or (end - start).days > 3 * 366:
            abort(400, _("kies een periode van hoogstens drie jaar, met tot na van"))
        return start, end, kind
    months = PERIODS.get(kind, 12)
    first = (today.year * 12 + today.month - 1) - months + 1
    return dt.date(first // 12, first % 12 + 1, 1), today, kind if kind in PERIODS else "jaar"


def _choices(municipalities: list[Municipality]) -> list[tuple[str, str, list[int]]]:
    """What the user may choose: all their municipalities, each centrumgemeente region of
    which they may see every member, and each municipality: (value, label, ids)."""
    settings = current_app.extensions["vroegsignaal"].settings
    by_code = {m.code: m for m in municipalities}
    out = [("alle", _("alle (%(n)d)", n=len(municipalities)), [m.id for m in municipalities])]
    for name, members in sorted(settings.regions.items()):
        if members and all(code in by_code for code in members):
            out.append(
                (f"regio:{name}", _("regio %(name)s (%(n)d)", name=name, n=len(members)),
                 [by_code[c].id for c in members])
            )  # fmt: skip
    out += [(m.code, f"{m.name} ({m.code})", [m.id]) for m in municipalities]
    return out


def _statistics() -> tuple[Statistics, dict[str, Any]]:
    session = get_session()
    allowed = sorted(current_user.municipality_ids)
    municipalities = (
        session.query(Municipality)
        .filter(Municipality.id.in_(allowed))
        .order_by(Municipality.code)
        .all()
    )
    choices = _choices(municipalities)
    chosen = request.args.get("gemeente", "alle")
    ids = next((ids for value, _, ids in choices if value == chosen), None)
    if not ids:
        abort(404)
    today = today_nl()
    start, end, kind = _period(request.args, today)
    population = current_app.extensions["vroegsignaal"].settings.population
    data = compute(session, ids, start, end, population, today=today)
    form = {"gemeente": chosen, "periode": kind, "van": start, "tot": end,
            "keuzes": [(value, label) for value, label, _ in choices]}  # fmt: skip
    return data, form


def _number(text: str) -> float | None:
    try:
        return float(text.rstrip("%"))
    except ValueError:
        return None  # hidden ("<5", "(afgeschermd)") or not known ("—"): drawn as a gap


def bar_chart(
    labels: list[str],
    values: list[str],
    title: str,
    reference: float | None = None,
    reference_label: str = "",
    unit: str = "",
) -> str:
    """A small inline SVG bar chart (no script, no CDN); hidden values are drawn as gaps,
    and a dashed line marks a reference (the national figure, a norm)."""
    numbers = [_number(v) for v in values]
    top = max([n for n in numbers if n is not None] + [reference or 0, 1e-9])
    width, height, bar = 640, 180, 600 / max(len(labels), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 30}" '
        f'role="img" aria-label="{escape(title)}" class="chart">'
    ]
    for i, (label, n) in enumerate(zip(labels, numbers, strict=True)):
        x = 30 + i * bar
        if n is not None and n > 0:
            h = height * n / top
            parts.append(
                f'<rect x="{x + 2:.1f}" y="{height - h:.1f}" width="{bar - 4:.1f}" '
                f'height="{h:.1f}"><title>{escape(label)}: {n:g}{unit}</title></rect>'
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height + 14}" text-anchor="middle">'
            f"{escape(label[2:])}</text>"
        )
    if reference is not None:
        y = height - height * reference / top
        parts.append(
            f'<line x1="30" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="reference"/>'
            f'<text x="{width - 10}" y="{y - 4:.1f}" text-anchor="end">'
            f"{escape(reference_label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def charts(data: Statistics) -> list[tuple[str, str]]:
    """The trend charts, each drawn from the (suppressed) table shown under them."""
    rows = shown(data.table("per_maand"))
    labels = [r[0] for r in rows]
    per_1000 = [r[2] for r in rows]
    out = []
    if any(_number(v) is not None for v in per_1000):
        title = _("Signalen per 1.000 inwoners per maand")
        national = _("landelijk %(n)s", n=NATIONAL_SIGNALS_PER_1000_MONTH)
        out.append((title, bar_chart(labels, per_1000, title, NATIONAL_SIGNALS_PER_1000_MONTH,
                                     national)))  # fmt: skip
    else:
        out.append((_("Signalen per maand"),
                    bar_chart(labels, [r[1] for r in rows], _("Signalen"))))  # fmt: skip
    out.append((_("Bereik per maand (zaken met een gesprek)"),
                bar_chart(labels, [r[5] for r in rows], _("Bereik"), unit="%")))  # fmt: skip
    out.append((_("Hulp aanvaard per maand (van bereikt)"),
                bar_chart(labels, [r[6] for r in rows], _("Hulp aanvaard"), unit="%")))  # fmt: skip
    out.append((_("Mediaan dagen tot de eerste poging"),
                bar_chart(labels, [r[7] for r in rows], _("Dagen"), 14,
                          _("norm 14 dagen"))))  # fmt: skip
    return out


@bp.get("/dashboard")
@roles_required(Role.ANALYST, Role.ADMIN)
def dashboard() -> Any:
    data, form = _statistics()
    tables = [(t, shown(t)) for t in data.tables]
    return render_template(
        "dashboard.html", data=data, tables=tables, form=form, charts=charts(data)
    )


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
        # A sheet name: no : \\ / ? * [ ], at most 31 characters.
        sheet = book.create_sheet(re.sub(r"[][:\\/?*]", "", table.title)[:31])
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
