"""Exploitation types, recruitment, transport, control and relevance, per language, with
negation and speculation; unsupported languages; determinism."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.osint.tagging import Tagger, Tagging

DAY = dt.date(2026, 3, 18)


def tag(tagger: Tagger, text: str, language: str = "en", title: str = "") -> Tagging:
    return tagger.tag(text, language=language, published=DAY, title=title)


@pytest.mark.parametrize(("language", "text", "code"), [
    ("en", "Police freed six women forced into prostitution at a flat in Leeds.",
     "SexualExploitation"),
    ("en", "Inspectors found 30 men forced to work without pay on a farm in Norfolk.",
     "ForcedLabour"),
    ("en", "A 14-year-old girl sold as a bride by her father was rescued in Malawi.",
     "ForcedMarriage"),
    ("fr", "Trois femmes contraintes à se prostituer ont été libérées à Marseille.",
     "SexualExploitation"),
    ("fr", "Quarante ouvriers maliens étaient exploités sans salaire sur des chantiers.",
     "ForcedLabour"),
    ("fr", "Des enfants contraints à mendier dans le métro ont été pris en charge à Paris.",
     "ForcedBegging"),
    ("es", "La policía liberó a ocho mujeres obligadas a prostituirse en un club de Murcia.",
     "SexualExploitation"),
    ("es", "Rescatan a una empleada de hogar en situación de servidumbre en Asunción.",
     "Servitude"),
])
def test_exploitation_types_per_language(tagger: Tagger, language: str, text: str,
                                         code: str) -> None:
    assert code in tag(tagger, text, language).codes("exploitation_type")


def test_child_labour_comes_with_minors_at_work(tagger: Tagger) -> None:
    found = tag(tagger, "Inspectors rescued 12 children aged 11 to 15 who were forced to work "
                        "fourteen hours a day in a garment workshop in Dhaka.")
    assert {"ForcedLabour", "ChildLabour"} <= found.codes("exploitation_type")
    begging = tag(tagger, "Police removed 30 boys aged 8 to 12 from forced begging in Dakar.")
    assert "ChildLabour" not in begging.codes("exploitation_type")


@pytest.mark.parametrize(("language", "text", "codes"), [
    # forced criminality told by its verbs (used to sell, made to pickpocket, contraints de
    # voler, obligados a vender droga), not only as "criminal exploitation"
    ("en", "Police freed three teenagers who had been used to sell crack cocaine for a gang.",
     {"Other"}),
    ("en", "Two women were rescued after a gang forced them to pickpocket tourists in London.",
     {"Other"}),
    ("fr", "Trois adolescents contraints de vendre de la drogue ont été mis à l'abri mardi.",
     {"Other"}),
    ("es", "Rescatan a dos adolescentes obligados por una pandilla a vender droga en Tegucigalpa.",
     {"Other"}),
    # minors at work with no word of child labour: forced labour, and child labour from the age
    ("en", "Police rescued eight boys aged 10 to 14 who were made to sell sweets at traffic "
           "lights in Lagos and hand over their takings.", {"ForcedLabour", "ChildLabour"}),
    ("fr", "Des enfants burkinabè récoltaient le cacao sans salaire dans des plantations "
           "ivoiriennes, selon les enquêteurs qui en ont libéré vingt.",
     {"ForcedLabour", "ChildLabour"}),
    ("es", "Rescataron a seis niños de entre 9 y 13 años que eran obligados a vender dulces en "
           "los semáforos de Guadalajara.", {"ForcedLabour", "ChildLabour"}),
    # marriage told as a sale, organs as a sale
    ("en", "A 14-year-old girl was rescued from a house in Sindh where she had been married "
           "to a 50-year-old man in exchange for a loan.", {"ForcedMarriage"}),
    ("es", "Una niña de 13 años fue casada con un hombre de 40 años a cambio de ganado; la "
           "Fiscalía la rescató.", {"ForcedMarriage"}),
    ("en", "Police rescued men who were paid $3,000 each for selling a kidney at a private "
           "clinic in Kathmandu.", {"OrganRemoval"}),
    ("fr", "Des migrants ont été contraints de vendre un rein dans une clinique du Caire, a "
           "révélé la police.", {"OrganRemoval"}),
])
def test_types_told_without_their_names(tagger: Tagger, language: str, text: str,
                                        codes: set[str]) -> None:
    assert tag(tagger, text, language).codes("exploitation_type") == codes


@pytest.mark.parametrize(("language", "text"), [
    ("en", "Police dismantled a prostitution ring in an operation against a network in Leeds."),
    ("fr", "Opération de police contre un réseau de prostitution à Lyon : six femmes libérées."),
    ("es", "Operación policial contra una red de prostitución en Murcia: liberadas seis mujeres."),
])
def test_an_operation_against_a_network_is_not_speculation(tagger: Tagger, language: str,
                                                           text: str) -> None:
    assert "SexualExploitation" in tag(tagger, text, language).codes("exploitation_type")


def test_a_denied_type_leaves_the_work_words_without_a_type(tagger: Tagger) -> None:
    found = tag(tagger, "Inspectors found no evidence of forced labour at the farm: the workers "
                        "were paid the minimum wage and their employer kept payslips.")
    assert "ForcedLabour" not in found.codes("exploitation_type")


@pytest.mark.parametrize(("language", "text"), [
    ("en", "Police raided the farm after a tip, but found no evidence of forced labour and "
           "said the women were not victims of sexual exploitation."),
    ("fr", "Les enquêteurs n'ont relevé aucun signe de travail forcé sur le chantier."),
    ("es", "La inspección no encontró indicios de explotación laboral en la finca."),
])
def test_negated_labels_are_not_tagged(tagger: Tagger, language: str, text: str) -> None:
    found = tag(tagger, text, language)
    assert not found.codes("exploitation_type")


def test_speculation_is_not_tagged(tagger: Tagger) -> None:
    found = tag(tagger, "Twelve women were rescued from a brothel in Lyon and forced into "
                        "prostitution. Police are investigating whether their passports were "
                        "confiscated.")
    assert "SexualExploitation" in found.codes("exploitation_type")
    assert "WithholdsDocuments" not in found.codes("control")


def test_recruitment_transport_and_control(tagger: Tagger) -> None:
    found = tag(tagger, "The women were contacted on Facebook with promises of jobs in "
                        "restaurants, flown to Dubai and forced into prostitution. Their "
                        "passports were confiscated and they were told they owed a debt of "
                        "$5,000 for the flight. They were locked in a flat and beaten.")
    assert found.codes("recruitment") == {"ThroughOnlineSocialNetworks"}
    assert found.codes("transport") == {"Air"}
    assert {"FalsePromises", "WithholdsDocuments", "DebtBondage", "RestrictsMovement",
            "PhysicalAbuse"} <= found.codes("control")


@pytest.mark.parametrize(("language", "text"), [
    ("en", "Customs officers seized 40 kilograms of cocaine at the port in a drug trafficking "
           "operation, and two men were arrested."),
    ("fr", "Trafic de drogue : 30 kilos de cannabis saisis à Marseille, trois dealers "
           "interpellés."),
    ("es", "La Guardia Civil incautó 500 kilos de hachís en una operación contra el "
           "narcotráfico en Cádiz."),
    ("en", "The city council launched an awareness campaign against human trafficking with a "
           "conference and a charity run on Saturday."),
])
def test_other_trafficking_and_awareness_are_irrelevant(tagger: Tagger, language: str,
                                                        text: str) -> None:
    found = tag(tagger, text, language)
    assert not found.relevance.relevant
    assert found.tags == ()


def test_relevance_has_a_confidence_and_its_evidence(tagger: Tagger) -> None:
    found = tag(tagger, "Police rescued 14 trafficking victims from a farm where they were "
                        "forced to work without pay.")
    assert found.relevance.relevant
    assert 0.5 <= found.relevance.confidence <= 1
    assert found.relevance.evidence


def test_an_unsupported_language_is_reported_not_tagged(tagger: Tagger) -> None:
    found = tag(tagger, "Die Polizei hat in Hamburg zwölf Frauen aus Rumänien befreit, die zur "
                        "Prostitution gezwungen worden waren.", "de")
    assert found.language.detected == "de"
    assert not found.language.supported and found.language.used is None
    assert found.tags == () and not found.relevance.relevant


def test_a_mislabelled_language_is_read_in_its_own(tagger: Tagger) -> None:
    found = tag(tagger, "La policía liberó a doce mujeres obligadas a prostituirse en un club "
                        "de carretera en Albacete.", "en")
    assert found.language.declared == "en" and found.language.used == "es"
    assert "SexualExploitation" in found.codes("exploitation_type")


def test_tagging_is_deterministic(tagger: Tagger) -> None:
    text = ("Nigerian women trafficked to Italy via Libya were forced into prostitution in "
            "Turin last month; their passports were taken.")
    first = tag(tagger, text)
    assert all(tag(tagger, text) == first for _ in range(3))
    assert Tagger(languages=["en"]).tag(text, language="en", published=DAY) == first


def test_confidences_lie_in_the_unit_interval_and_respect_the_threshold(tagger: Tagger) -> None:
    found = tag(tagger, "Police in Madrid freed nine Paraguayan women who had been recruited on "
                        "Facebook and forced into prostitution in a flat.")
    assert found.tags
    assert all(tagger.min_confidence <= t.confidence <= 1 for t in found.tags)
