"""Ages and CTDC bands, age group, gender, and the incident's month."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.osint.tagging import Tagger, Tagging, age_band

DAY = dt.date(2026, 3, 18)  # a Wednesday


def tag(tagger: Tagger, text: str, language: str = "en",
        published: dt.date = DAY) -> Tagging:
    return tagger.tag(text, language=language, published=published)


@pytest.mark.parametrize(("age", "band"), [
    (0, "0-8"), (8, "0-8"), (9, "9-17"), (17, "9-17"), (18, "18-20"), (23, "21-23"),
    (26, "24-26"), (29, "27-29"), (30, "30-38"), (47, "39-47"), (48, "48+"), (90, "48+"),
])
def test_ctdc_age_bands(age: int, band: str) -> None:
    assert age_band(age) == band


@pytest.mark.parametrize(("language", "text", "ages", "group"), [
    ("en", "A 16-year-old girl was forced into prostitution in Leeds, while a 45-year-old man "
           "was arrested.", {16}, "minor"),
    ("en", "The women, aged 19 to 24, were forced into prostitution in Leeds.", {19, 24},
     "adult"),
    ("fr", "Deux jeunes filles âgées de 15 et 19 ans ont été contraintes à se prostituer à "
           "Lyon.", {15, 19}, "both"),
    ("es", "Una niña de 14 años fue obligada a prostituirse en Lima; el detenido, de 52 años, "
           "fue enviado a prisión.", {14}, "minor"),
])
def test_victim_ages_bands_and_group(tagger: Tagger, language: str, text: str, ages: set[int],
                                     group: str) -> None:
    found = tag(tagger, text, language)
    assert {int(t.code) for t in found.of("age")} == ages
    assert all(t.band == age_band(int(t.code)) for t in found.of("age"))
    assert found.codes("age_group") == {group}


def test_gender_of_victims_not_of_perpetrators(tagger: Tagger) -> None:
    found = tag(tagger, "Police freed five women forced into prostitution in a flat in Leeds. "
                        "Two men were arrested.")
    assert found.codes("gender") == {"Feminine"}
    trans = tag(tagger, "Six transgender women were forced into prostitution in Rome.")
    assert "TransgenderFeminine" in trans.codes("gender")


@pytest.mark.parametrize(("language", "text", "month"), [
    ("en", "Police raided the brothel in Leeds on 12 January 2026 and freed six women forced "
           "into prostitution.", "2026-01"),
    ("en", "Police freed six women forced into prostitution in Leeds last month.", "2026-02"),
    ("en", "Police freed six women forced into prostitution in Leeds on Tuesday.", "2026-03"),
    ("fr", "Six femmes contraintes à se prostituer ont été libérées à Lyon le mois dernier.",
     "2026-02"),
    ("fr", "Six femmes contraintes à se prostituer ont été libérées à Lyon en novembre.",
     "2025-11"),
    ("es", "Seis mujeres obligadas a prostituirse fueron liberadas en Lima el pasado 3 de "
           "marzo.", "2026-03"),
])
def test_incident_month_from_absolute_and_relative_dates(tagger: Tagger, language: str,
                                                         text: str, month: str) -> None:
    assert tag(tagger, text, language).codes("incident_period") == {month}


def test_a_weekday_may_fall_in_the_previous_month(tagger: Tagger) -> None:
    found = tag(tagger, "Police freed six women forced into prostitution in Leeds on Saturday.",
                published=dt.date(2026, 4, 1))
    assert found.codes("incident_period") == {"2026-03"}


def test_a_trial_date_is_not_the_incident_month(tagger: Tagger) -> None:
    found = tag(tagger, "Six women forced into prostitution were freed in Leeds in October "
                        "2025. The trial of two men began in February 2026.")
    assert found.codes("incident_period") == {"2025-10"}
