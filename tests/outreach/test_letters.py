"""Letters and cards as PDF from editable templates; e-mail through a real SMTP server."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from sqlalchemy import select

from outreach.enums import ContactKind
from outreach.jobs import match, plan
from outreach.models import Case, CaseMessage
from signals.db import unit_of_work
from signals.enums import Role
from signals.rules import today_nl
from signals.runtime import Runtime
from tests.factories import World, login_as, row
from tests.outreach.conftest import Inbox


def _csrf(page: str) -> str:
    match_ = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match_
    return match_.group(1)


def _setup(client: Any, world: World, runtime: Runtime) -> int:
    world.ingest(
        [row(signaal_id="L1", achternaam="Şahin", tussenvoegsel="", email="a.sahin@example.nl")]
    )
    match(runtime)
    plan(runtime)
    with unit_of_work(runtime.readers) as session:
        case_id = session.scalars(select(Case.id)).one()
    login_as(client, world, Role.COUNSELLOR, "c@example.nl")
    return case_id


def _app_client(runtime: Runtime) -> Any:
    from webapp import create_app

    return create_app(runtime=runtime, TESTING=True).test_client()


def test_a_letter_and_a_card_as_pdf_from_editable_templates(world: World, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "kaartje.txt").write_text("Eigen tekst van de gemeente voor {{ naam }}.\n")
    runtime = Runtime(
        world.runtime.settings.model_copy(update={"letter_templates_dir": str(templates)}),
        world.runtime.engine,
    )
    client = _app_client(runtime)
    case_id = _setup(client, world, runtime)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    answer = client.post(
        f"/cases/{case_id}/brief", data={"csrf_token": _csrf(page), "soort": "brief"}
    )
    assert answer.status_code == 200 and answer.mimetype == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(answer.data)).pages)
    assert "J. Şahin" in text  # every name prints, also with ş
    assert "Oudegracht 12" in text and "3511AB" in text.replace(" ", "")
    assert f"VS-0344-{case_id}" in text and "Beste J. Şahin" in text
    card = client.post(
        f"/cases/{case_id}/brief", data={"csrf_token": _csrf(page), "soort": "kaartje"}
    )
    assert card.status_code == 200 and card.mimetype == "application/pdf"
    card_text = PdfReader(io.BytesIO(card.data)).pages[0].extract_text()
    assert "Eigen tekst van de gemeente voor J. Şahin." in card_text  # the edited template
    # Both count as attempts (the first picks the case up) and are kept in the case.
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Brief (Ochtend)" in page or "Brief (Middag)" in page or "Brief (Avond)" in page
    assert "Eigen tekst van de gemeente" in page
    with unit_of_work(runtime.readers) as session:
        kept = session.scalars(select(CaseMessage)).all()
        assert [m.kind for m in kept] == [ContactKind.BRIEF, ContactKind.KAARTJE]
        assert all("Şahin".encode() not in m.content for m in kept)  # encrypted


def test_an_email_goes_through_smtp_and_is_kept(world: World, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    settings = world.runtime.settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_starttls": False,
            "mail_from": "vroegsignalering@utrecht.example",
        }
    )
    runtime = Runtime(settings, world.runtime.engine)
    client = _app_client(runtime)
    case_id = _setup(client, world, runtime)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'value="a.sahin@example.nl"' in page  # the draft is filled in from the signal
    token = _csrf(page)
    sent = client.post(
        f"/cases/{case_id}/email",
        data={
            "csrf_token": token,
            "to": "a.sahin@example.nl",
            "subject": "Hulp bij uw betalingen",
            "body": "Beste mevrouw Şahin,\n\nWij helpen u graag.",
        },
        follow_redirects=True,
    )
    assert "E-mail verstuurd" in sent.get_data(as_text=True)
    (recipients, message) = inbox.messages[0]
    assert recipients == ["a.sahin@example.nl"]
    assert message["Subject"] == "Hulp bij uw betalingen"
    assert "Wij helpen u graag." in message.get_payload(decode=True).decode()
    with unit_of_work(runtime.readers) as session:
        kept = session.scalars(select(CaseMessage)).one()
        assert kept.message_id == message["Message-ID"]
        case = session.get(Case, case_id)
        assert case is not None and [a.kind for a in case.attempts] == [ContactKind.MAIL]
    # A header injection attempt is refused, and nothing is stored or sent.
    refused = client.post(
        f"/cases/{case_id}/email",
        data={"csrf_token": token, "to": "x@example.nl\r\nBcc: y@example.nl", "subject": "s",
              "body": "b"},
        follow_redirects=True,
    )  # fmt: skip
    assert "ongeldig e-mailadres" in refused.get_data(as_text=True)
    assert len(inbox.messages) == 1


def test_no_smtp_server_means_no_email_and_nothing_stored(client: Any, world: World) -> None:
    case_id = _setup(client, world, world.runtime)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    answer = client.post(
        f"/cases/{case_id}/email",
        data={"csrf_token": _csrf(page), "to": "a@example.nl", "subject": "s", "body": "b"},
        follow_redirects=True,
    )
    assert "geen SMTP-server ingesteld" in answer.get_data(as_text=True)
    with unit_of_work(world.runtime.readers) as session:
        assert session.scalars(select(CaseMessage)).all() == []
        case = session.get(Case, case_id)
        assert case is not None and case.attempts == []


def test_counsellors_get_their_daily_list_without_personal_data(
    client: Any, world: World, smtp: tuple[int, Inbox]
) -> None:
    import datetime as dt

    from outreach.jobs import send_reminders
    from signals.models import User

    port, inbox = smtp
    case_id = _setup(client, world, world.runtime)
    assert send_reminders(world.runtime) == 0  # no SMTP server configured: nothing sent
    with unit_of_work(world.runtime.sessions) as session:
        case = session.get(Case, case_id)
        user = session.scalars(select(User).where(User.email == "c@example.nl")).one()
        assert case is not None
        case.assigned_to_id = user.id
        case.tasks[0].due_on = today_nl() - dt.timedelta(days=3)
        case.tasks[1].due_on = today_nl()
        first_kind = case.tasks[0].kind.value
    settings = world.runtime.settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False}
    )
    assert send_reminders(Runtime(settings, world.runtime.engine)) == 1
    (recipients, message) = inbox.messages[0]
    body = message.get_payload(decode=True).decode()
    assert recipients == ["c@example.nl"]
    assert f"zaak {case_id}: {first_kind}" in body and "(verlopen)" in body
    assert "2 taken" in message["Subject"]
    assert "Şahin" not in body and "Oudegracht" not in body  # case numbers only
    # The same list heads the counsellor's queue.
    queue = client.get("/queue").get_data(as_text=True)
    assert "Mijn taken voor vandaag" in queue and f"zaak #{case_id}" in queue
