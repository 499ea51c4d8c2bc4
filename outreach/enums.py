"""Value lists of outreach. DDAS values verbatim (DDAS Vroegsignalering v1.2)."""

from __future__ import annotations

import datetime as dt
import enum


class CaseResult(enum.StrEnum):
    """DDAS ``EnumEindresultaat``: the one end result of a case."""

    ADVIES_QUICK_FIX = "(Budget)advies en/of quick fix"
    GEEN_CONTACT = "Definitief geen contact kunnen krijgen"
    GEEN_REACTIE = "Geen reactie na eerder contact"
    AL_BEKEND = "Inwoner al bekend bij schuldhulpverlening"
    ANDER_TRAJECT = "Inwoner heeft al een ander lopend traject"
    ZELF_BETAALD = "Inwoner heeft zelf al betaald/betalingsregeling getroffen"
    OVERLEDEN = "Inwoner is overleden"
    REGELT_ZELF = "Inwoner regelt het zelf/hoeft geen hulp vanuit vroegsignalering"
    NIET_OPGEPAKT_ANDERE_REDEN = "Niet opgepakt: andere reden"
    NIET_OPGEPAKT_HERHAALD = "Niet opgepakt: herhaalde melding"
    NIET_OPGEPAKT_ONTERECHT = "Niet opgepakt: onterecht signaal"
    GEEN_INWONER = "Persoon is geen inwoner (meer) in de gemeente"
    VERVOLGHULP = "Vervolghulp en/of verwijzing"
    VERVOLGHULP_FINANCIEEL = "Vervolghulp en/of verwijzing financieel"
    VERVOLGHULP_NIET_FINANCIEEL = "Vervolghulp en/of verwijzing niet financieel"
    VERWIJZING_ZONDER_INWONER = "Verwijzing zonder tussenkomst inwoner"


#: Results that mean the resident accepted help: the 30-day collection pause starts.
HELP_ACCEPTED = frozenset(
    {
        CaseResult.ADVIES_QUICK_FIX,
        CaseResult.VERVOLGHULP,
        CaseResult.VERVOLGHULP_FINANCIEEL,
        CaseResult.VERVOLGHULP_NIET_FINANCIEEL,
    }
)


class ContactKind(enum.StrEnum):
    """DDAS ``EnumContactsoort``."""

    ADMINISTRATIEF = "Administratief"
    AFSPRAAK = "Afspraak op locatie"
    BRIEF = "Brief"
    HUISBEZOEK = "Huisbezoek"
    KAARTJE = "Kaartje"
    MAIL = "Mail"
    ONBEKEND = "Onbekend"
    OVERIGE = "Overige"
    SMS = "SMS/Whatsapp"
    TELEFOON = "Telefoon"


#: Kinds that reach a person directly (a plan has at least one of them).
PERSONAL_KINDS = frozenset({ContactKind.TELEFOON, ContactKind.HUISBEZOEK, ContactKind.AFSPRAAK})


class Dagdeel(enum.StrEnum):
    """DDAS ``EnumDagdeel``: before 12:00, 12:00-18:00, from 18:00."""

    OCHTEND = "Ochtend"
    MIDDAG = "Middag"
    AVOND = "Avond"

    @classmethod
    def of(cls, moment: dt.time) -> Dagdeel:
        if moment.hour < 12:
            return cls.OCHTEND
        return cls.MIDDAG if moment.hour < 18 else cls.AVOND


class CaseState(enum.StrEnum):
    """Where a case is in the workflow (internal; the DDAS status lives on its signals)."""

    NIEUW = "nieuw"  # matched, not yet picked up
    TE_BEOORDELEN = "te_beoordelen"  # on the review list (e.g. outside the convenant window)
    OPGEPAKT = "opgepakt"  # picked up: the first attempt was made
    AFGESLOTEN = "afgesloten"  # closed with a DDAS end result


class Priority(enum.IntEnum):
    """Queue order: a lower value comes first."""

    SPOED = 0  # threatening: eviction date near, end of supply, crisis
    HOOG = 1
    MIDDEN = 2
    LAAG = 3

    @property
    def label(self) -> str:
        return self.name.lower()
