"""Locations and their route roles, on hand-written sentences (not corpus items)."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.osint.tagging import Tagger, Tagging

DAY = dt.date(2026, 3, 18)


def tag(tagger: Tagger, text: str, language: str = "en", title: str = "") -> Tagging:
    return tagger.tag(text, language=language, published=DAY, title=title)


@pytest.mark.parametrize(("language", "text", "expected"), [
    ("en", "Police said the twelve women had been trafficked from Nigeria to Italy via Libya "
           "and forced into prostitution.",
     {("NG", "origin"), ("IT", "destination"), ("LY", "transit")}),
    ("fr", "Originaires du Nigeria, les douze femmes ont transité par la Libye avant d'être "
           "exploitées à Turin, où elles étaient contraintes à se prostituer.",
     {("NG", "origin"), ("LY", "transit"), ("IT", "destination")}),
    ("es", "Las doce mujeres, procedentes de Paraguay, fueron trasladadas a través de "
           "Argentina con destino a España, donde eran explotadas sexualmente en un prostíbulo.",
     {("PY", "origin"), ("AR", "transit"), ("ES", "destination")}),
])
def test_cues_give_each_country_its_role(tagger: Tagger, language: str, text: str,
                                         expected: set[tuple[str, str]]) -> None:
    assert tag(tagger, text, language).locations() == expected


@pytest.mark.parametrize(("language", "text", "country"), [
    ("en", "Nine Vietnamese workers were forced to work without pay at a nail bar in Leeds.",
     "VN"),
    ("fr", "Neuf femmes nigérianes ont été exploitées dans une maison close de Lyon.", "NG"),
    ("es", "Rescatan a nueve mujeres paraguayas explotadas sexualmente en un club de Madrid.",
     "PY"),
])
def test_a_demonym_describing_the_victims_is_their_origin(tagger: Tagger, language: str,
                                                          text: str, country: str) -> None:
    assert (country, "origin") in tag(tagger, text, language).locations()


def test_a_raid_with_no_movement_gives_the_destination_only(tagger: Tagger) -> None:
    found = tag(tagger, "Officers raided a brothel in Manchester on Tuesday and freed four "
                        "women who had been forced into prostitution.")
    assert found.locations() == {("GB", "destination")}


def test_agencies_perpetrators_and_conferences_are_not_on_the_route(tagger: Tagger) -> None:
    found = tag(tagger, "Spanish police and the Romanian embassy said two Albanian men were "
                        "arrested after women from Moldova were forced into prostitution in "
                        "Seville. The case was presented at a conference in Vienna.")
    assert found.locations() == {("MD", "origin"), ("ES", "destination")}


def test_a_city_is_recorded_as_its_country_with_its_text(tagger: Tagger) -> None:
    found = tag(tagger, "The girls were recruited in Lagos and taken to Palermo, where they "
                        "were sexually exploited.")
    assert found.locations() == {("NG", "origin"), ("IT", "destination")}
    origin = next(t for t in found.of("location") if t.role == "origin")
    assert origin.evidence[0].text == "Lagos"


def test_an_ambiguous_city_follows_the_country_named_next_to_it(tagger: Tagger) -> None:
    texas = tag(tagger, "Two girls were found in a motel in Paris, Texas, where they had been "
                        "forced into prostitution.")
    assert texas.locations() == {("US", "destination")}
    venezuela = tag(tagger, "Las mujeres venezolanas fueron explotadas sexualmente en un club "
                            "de Valencia, en Venezuela.", "es")
    assert ("VE", "destination") in venezuela.locations()
    assert not any(country == "ES" for country, _ in venezuela.locations())


def test_a_common_word_is_no_place(tagger: Tagger) -> None:
    found = tag(tagger, "Reading the messages, police said the women had been forced into "
                        "prostitution in Bath and kept in a Mobile home.")
    assert {country for country, _ in found.locations()} <= {"GB"}
    assert all(t.evidence[0].text not in ("Reading", "Mobile") for t in found.of("location"))


def test_negated_routes_are_not_tagged(tagger: Tagger) -> None:
    found = tag(tagger, "The women were forced into prostitution in Berlin. Police said they "
                        "were not taken to Poland.")
    assert found.locations() == {("DE", "destination")}


def test_a_return_home_marks_the_origin(tagger: Tagger) -> None:
    found = tag(tagger, "After months of forced labour on farms in Italy, the men were "
                        "repatriated to Senegal.")
    assert found.locations() == {("IT", "destination"), ("SN", "origin")}


def test_a_crowd_report_in_lower_case_is_read(tagger: Tagger) -> None:
    found = tag(tagger, "car wash near the ring road in leicester, the romanian lads work "
                        "7 days a week and the boss keeps their passports. they sleep in "
                        "the back and never go out")
    assert found.locations() == {("RO", "origin"), ("GB", "destination")}
