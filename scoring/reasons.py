"""The texts of a score's reasons: Dutch templates, written out and read back.

A score keeps its reasons as Dutch text (``HouseholdScore.reasons``, a JSON list of str): the
API, the exports and the audit read them as they are. Every reason is one of the templates
below, filled in with numbers only; :func:`parse` reads a stored text back into its template
and numbers, so a page can show it in its own language (``webapp.i18n``, filter ``reden``).
A text that fits no template (from an older model) is shown as it is.

The templates are marked for the catalogue (``N_`` and ``NP_``), so changing
one means running the extract and update commands of ``webapp/i18n.py``; the scores stored
before keep their old Dutch text, which is then shown untranslated.
"""

from __future__ import annotations

import re

from signals.texts import N_, NP_, Number, Plural, Text, pattern_of

# -- the templates: every parameter is a whole number --------------------------------------------
EVICTION_WITHIN = N_("ontruimingsdatum binnen %(days)s dagen")
EVICTION_KNOWN = N_("ontruimingsdatum bekend")
RENT_MONTHS = NP_(
    "huurachterstand van %(num)s maand (totaal € %(amount)s)",
    "huurachterstand van %(num)s maanden (totaal € %(amount)s)",
)
RENT = N_("huurachterstand (totaal € %(amount)s)")
TOTAL = N_("totale achterstand € %(amount)s")
RENT_GREW = N_("huurachterstand gegroeid sinds vorig signaal (+€ %(amount)s)")
ARREARS_GREW = N_("achterstand gegroeid sinds vorig signaal (+€ %(amount)s)")
ALSO_ENERGY = N_("ook signaal energie")
ENERGY = N_("signaal energieleverancier")
ALSO_WATER = N_("ook signaal water")
WATER = N_("signaal drinkwaterbedrijf")
ALSO_HEALTH = N_("ook signaal zorgverzekeraar")
HEALTH = N_("signaal zorgverzekeraar")
PARTNERS = NP_("signaal van %(num)s partner", "signalen van %(num)s partners")
SIGNALS_12M = NP_("%(num)s signaal in 12 maanden", "%(num)s signalen in 12 maanden")
OTHER_MONTHS = NP_(
    "achterstand bij energie, water of zorg van %(num)s maand",
    "achterstand bij energie, water of zorg van %(num)s maanden",
)
DAYS_IN_ARREARS = NP_("achterstand loopt %(num)s dag", "achterstand loopt %(num)s dagen")
RENT_GROWS_WITH_ENERGY = N_("huurachterstand groeit terwijl een energiesignaal binnenkomt")
END_OF_SUPPLY = N_("eindelevering energie aangekondigd")
END_OF_SUPPLY_RENT = N_("eindelevering energie samen met huurachterstand")
CRISIS = N_("crisissignaal van de partner")
WARM = N_("warme overdracht door de partner")
WINDOW = N_("signaal buiten het convenantvenster")
FIRST_SIGNAL = NP_(
    "eerste signaal %(num)s maand geleden",
    "eerste signaal %(num)s maanden geleden",
)

SINGLE = (EVICTION_WITHIN, EVICTION_KNOWN, RENT, TOTAL, RENT_GREW, ARREARS_GREW, ALSO_ENERGY,
          ENERGY, ALSO_WATER, WATER, ALSO_HEALTH, HEALTH, RENT_GROWS_WITH_ENERGY, END_OF_SUPPLY,
          END_OF_SUPPLY_RENT, CRISIS, WARM, WINDOW)  # fmt: skip
PLURALS = (RENT_MONTHS, PARTNERS, SIGNALS_12M, OTHER_MONTHS, DAYS_IN_ARREARS, FIRST_SIGNAL)


def text(template: str, **numbers: float) -> Text:
    """A reason from a one-form template; the numbers rounded to whole ones."""
    return Text(template, **{k: Number(round(v)) for k, v in numbers.items()})


def plural(forms: tuple[str, str], num: float, **numbers: float) -> Text:
    """A reason from a (singular, plural) template, the form chosen by ``num``."""
    rest = {k: Number(round(v)) for k, v in numbers.items()}
    return Plural(forms[0], forms[1], Number(round(num)), **rest)


# -- reading a stored reason back ----------------------------------------------------------------
#: A whole number as :class:`~signals.texts.Number` writes it in Dutch: "7", "2.400".
_NUMBER = r"\d{1,3}(?:\.\d{3})+|\d+"


_PATTERNS: list[tuple[re.Pattern[str], str, str | None]] = [
    (pattern_of(t, _NUMBER), t, None) for t in SINGLE
] + [(pattern_of(form, _NUMBER), one, many) for one, many in PLURALS for form in (one, many)]


def parse(stored: str) -> Text | None:
    """The reason ``stored`` as its template and numbers, or None if it fits no template.

    Both forms of a plural template are read with either number: "signalen van 1 partners",
    as an older version wrote it, is the plural template with 1.
    """
    for pattern, msgid, many in _PATTERNS:
        match = pattern.fullmatch(stored)
        if match is None:
            continue
        numbers = {k: Number(int(v.replace(".", ""))) for k, v in match.groupdict().items()}
        if many is None:
            return Text(msgid, **numbers)
        num = numbers.pop("num")
        return Plural(msgid, many, num, **numbers)
    return None
