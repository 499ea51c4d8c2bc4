"""Letters, cards and e-mails to residents, from editable Dutch templates.

The templates are plain text with Jinja2 placeholders (``outreach/letter_templates``); a file
of the same name in ``letter_templates_dir`` replaces the built-in one, so a municipality
edits its own wording without touching code. Letters and cards become PDF (fpdf2, with the
DejaVu Sans font that ships with matplotlib, so every name prints: ş, ı, ğ, ë); e-mails go
out through the configured SMTP server. Whatever was sent is kept, encrypted, in the case.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
from fpdf import FPDF

from config import Settings
from outreach.enums import ContactKind
from outreach.models import Case, CaseMessage
from signals.crypto import DataProtector
from signals.ingest import CONTACT_CONTEXT, IDENTITY_CONTEXT
from signals.rules import today_nl
from signals.texts import Text

BUILT_IN = Path(__file__).with_name("letter_templates")
MESSAGE_CONTEXT = b"case.message"
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
MONTHS = (
    "januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
    "oktober", "november", "december",
)  # fmt: skip
TEMPLATES = {ContactKind.BRIEF: "brief.txt", ContactKind.KAARTJE: "kaartje.txt"}


class MailError(Exception):
    """The e-mail could not be sent; the message (a :class:`~signals.texts.Text`) says why
    without personal data."""


def dutch_date(day: dt.date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def _environment(settings: Settings) -> jinja2.Environment:
    folders = [settings.letter_templates_dir] if settings.letter_templates_dir else []
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([*folders, str(BUILT_IN)]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text for PDF and e-mail, never HTML  # noqa: S701
        keep_trailing_newline=True,
    )


def context(case: Case, protector: DataProtector, settings: Settings) -> dict[str, Any]:
    """Who the case is about and where they live, from its newest signal."""
    signal = case.signals[-1]
    identity = protector.decrypt_json(signal.client.identity, IDENTITY_CONTEXT)
    contact = protector.decrypt_json(signal.contact, CONTACT_CONTEXT)
    surname = " ".join(p for p in (identity.get("tussenvoegsel"), identity.get("achternaam")) if p)
    naam = " ".join(p for p in (identity.get("voorletters"), surname) if p)
    return {
        "naam": naam or "De bewoner",
        "aanhef": naam or "bewoner",
        "straat": contact.get("straat", ""),
        "huisnummer": contact.get("huisnummer", ""),
        "toevoeging": contact.get("huisnummertoevoeging", ""),
        "postcode": contact.get("postcode", ""),
        "woonplaats": contact.get("woonplaats", ""),
        "email": contact.get("email", ""),
        "gemeente": case.municipality.name,
        "gemeentecode": case.municipality.code,
        "plaats": case.municipality.name,
        "datum": dutch_date(today_nl()),
        "zaaknummer": f"VS-{case.municipality.code}-{case.id}",
        "telefoon": settings.outreach_phone,
    }


def render_text(name: str, values: dict[str, Any], settings: Settings) -> str:
    return _environment(settings).get_template(name).render(**values)


def pdf(text: str, card: bool = False) -> bytes:
    """A simple A4 letter (or A6 card) of plain text paragraphs."""
    document = FPDF(format=(105, 148) if card else "A4")  # A6 card or A4 letter, in mm
    document.set_margins(12 if card else 25, 12 if card else 20)
    document.set_auto_page_break(True, margin=12 if card else 20)
    document.add_font("DejaVu", fname=str(FONT))
    document.set_font("DejaVu", size=9 if card else 11)
    document.set_title("Gemeente — vroegsignalering")
    document.set_creation_date(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))  # no timestamp leak
    document.add_page()
    for paragraph in text.split("\n"):
        document.multi_cell(0, 5 if card else 6, paragraph, new_x="LMARGIN", new_y="NEXT")
    return bytes(document.output())


def letter(
    case: Case, kind: ContactKind, protector: DataProtector, settings: Settings, by_id: int
) -> tuple[bytes, CaseMessage]:
    """Render a letter or card as PDF; the text is kept in the case."""
    values = context(case, protector, settings)
    text = render_text(TEMPLATES[kind], values, settings)
    address = (
        f"{values['straat']} {values['huisnummer']}{values['toevoeging']}, {values['postcode']}"
    )
    message = _keep(case, kind, address, "", text, protector, by_id)
    return pdf(text, card=kind is ContactKind.KAARTJE), message


def email_draft(case: Case, protector: DataProtector, settings: Settings) -> dict[str, str]:
    """The e-mail template filled in: recipient, subject and body (editable before sending)."""
    values = context(case, protector, settings)
    subject, _, body = render_text("email.txt", values, settings).partition("\n---\n")
    return {"to": values["email"], "subject": subject.strip(), "body": body.lstrip("\n")}


def send_email(
    case: Case,
    to: str,
    subject: str,
    body: str,
    protector: DataProtector,
    settings: Settings,
    by_id: int,
) -> CaseMessage:
    """Send one e-mail to the resident through the SMTP server; keep it in the case."""
    message_id = mail(settings, to, subject, body)
    return _keep(case, ContactKind.MAIL, to, subject, body, protector, by_id, message_id)


def mail(settings: Settings, to: str, subject: str, body: str) -> str:
    """Send one plain-text e-mail through the configured SMTP server; its Message-ID."""
    if not settings.smtp_host:
        raise MailError(Text("er is geen SMTP-server ingesteld (VROEGSIGNAAL_SMTP_HOST)"))
    if "@" not in to or any(c in to for c in "\r\n,;"):
        raise MailError(Text("ongeldig e-mailadres"))
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=20) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(
            Text("de e-mail is niet verstuurd (%(error)s)", error=type(exc).__name__)
        ) from None
    return str(message["Message-ID"])


def _keep(
    case: Case,
    kind: ContactKind,
    recipient: str,
    subject: str,
    text: str,
    protector: DataProtector,
    by_id: int,
    message_id: str | None = None,
) -> CaseMessage:
    content = json.dumps({"aan": recipient, "onderwerp": subject, "tekst": text}).encode()
    record = CaseMessage(
        kind=kind,
        content=protector.encrypt(content, MESSAGE_CONTEXT),
        message_id=message_id,
        by_id=by_id,
    )
    case.messages.append(record)
    return record


@dataclass
class Kept:
    kind: ContactKind
    recipient: str
    subject: str
    text: str
    sent_at: dt.datetime


def kept(message: CaseMessage, protector: DataProtector) -> Kept:
    data = json.loads(protector.decrypt(message.content, MESSAGE_CONTEXT))
    return Kept(message.kind, data["aan"], data["onderwerp"], data["tekst"], message.sent_at)
