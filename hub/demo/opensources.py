"""The demo's open sources: a newsroom folder of saved articles, and a few crowd reports.

Everything here is fictitious. :func:`write_newsroom` writes a folder of the kinds a closed
network collects (an RSS file saved from a feed, a saved article as text, a JSON export);
:func:`seed_open_sources` configures it as a folder source of the running hub, fetches it
once (the articles are tagged and the same wire story told twice becomes one incident with
two sources), and files three crowd reports as the public report page would (sealed). The
demo's reviewer has accepted two incidents as the tagger suggested them (the story two
outlets told, and the first crowd report), so that the ``incidents`` dataset is there for
analysts from the start; the others wait in the review queue, where every decision
publishes the dataset again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import Any

from hub.errors import Conflict
from hub.osint.collection import NewItem

__all__ = ["NEWSROOM", "REPORTS", "seed_open_sources", "write_newsroom"]

#: The folder source's name in the demo.
NEWSROOM = "Demo newsroom (saved articles)"

_WIRE = (
    "Police in Milan said on Tuesday they had freed eleven Nigerian women who were forced "
    "into prostitution after being recruited in Benin City with promises of work as "
    "hairdressers. The women travelled by bus through Niger to Libya and crossed the sea "
    "to Sicily in small boats, investigators said. Their passports were taken on arrival "
    "and each was told she owed 30,000 euros for the journey. Three suspects were arrested."
)
_RSS_ITEMS = [
    ("Eleven women freed from sexual exploitation ring in Milan", "2026-03-12", _WIRE),
    ("Fishing crew held on vessel for two years, inspectors say", "2026-04-02",
     "Labour inspectors in Cape Town boarded a trawler and found 14 men from Indonesia and "
     "the Philippines who said they had not been paid for two years. The men were "
     "recruited through an online advertisement for deck hands, flown to Singapore and "
     "taken to the ship, where the captain kept their passports. Several described "
     "beatings and 20-hour working days."),
    ("Awareness week opens with a conference in Vienna", "2026-04-20",
     "Ministers and experts met in Vienna on Monday to open an awareness week against "
     "human trafficking. Speakers called for better data sharing between countries. No "
     "new cases were presented at the conference."),
]
_TEXT_ARTICLE = (
    "Nigerian women freed in Milan, three held\n"
    + _WIRE + " A court will decide next month whether the suspects stay in custody."
)
_JSON_ARTICLES = [
    {"title": "Desmantelada una red de explotación laboral en Almería",
     "published": "2026-05-08", "language": "es",
     "text": "La Guardia Civil liberó a 23 trabajadores procedentes de Marruecos y Mali en "
             "una finca de Almería. Los trabajadores habían sido captados en sus países con "
             "falsas promesas de contratos y trabajaban más de doce horas al día sin "
             "cobrar. Los responsables les retenían los pasaportes y les amenazaban con "
             "denunciarles a la policía."},
    {"title": "Des mineurs contraints à la mendicité à Lyon",
     "published": "2026-06-15", "language": "fr",
     "text": "La police de Lyon a démantelé un réseau qui forçait six mineurs originaires "
             "de Roumanie à mendier dans le centre-ville. Les enfants, âgés de 11 à 15 ans, "
             "étaient arrivés en France en voiture avec des membres de leur famille et "
             "devaient remettre tout l'argent collecté chaque soir."},
]
#: Three crowd reports, as members of the public might type them on /report.
REPORTS = [
    ("en", "the girls at the nail bar on station road never leave, a man drives them in a "
           "van every morning and night. one of them said he keeps her passport and she "
           "owes him money for the flight from Vietnam"),
    ("en", "car wash on the ring road, same 6 lads working 7 days from 7am til late, they "
           "sleep in the back room. boss shouts at them and they look scared. think they "
           "are from Albania"),
    ("fr", "Dans le restaurant à côté de chez moi, une jeune femme travaille tous les jours "
           "sans pause. Elle m'a dit qu'elle venait du Cameroun, qu'on lui avait promis des "
           "études et que sa patronne garde ses papiers."),
]


def write_newsroom(folder: Path) -> Path:
    """Write the demo's saved articles in ``folder`` (rewritten the same way each time)."""
    folder.mkdir(parents=True, exist_ok=True)
    items = "".join(
        f"<item><title>{title}</title><link>https://wire.example/{i}</link>"
        f"<pubDate>{_rfc822(day)}</pubDate><description>{text}</description></item>"
        for i, (title, day, text) in enumerate(_RSS_ITEMS, 1))
    _same(folder / "wire-feed.xml",
          '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
          f"<title>Wire (saved feed)</title><link>https://wire.example/</link>{items}"
          "</channel></rss>\n")
    _same(folder / "milan-daily.txt", _TEXT_ARTICLE + "\n")
    _same(folder / "regional-press.json",
          json.dumps(_JSON_ARTICLES, ensure_ascii=False, indent=2) + "\n")
    return folder


def seed_open_sources(services: Any, folder: Path, reviewer: str) -> dict[str, int]:
    """Configure ``folder`` as the demo's folder source, fetch it once, file the crowd
    reports (each once: the collection knows a report it has seen), and have ``reviewer``
    (an e-mail address) accept the first incidents (module docstring). Counts of what was
    new."""
    with contextlib.suppress(Conflict):  # else a demo started before configured it
        services.sources.add({"name": NEWSROOM, "kind": "folder",
                              "location": str(folder.resolve()), "every_minutes": 60,
                              "trust": "high"})
    record = services.fetcher.fetch(NEWSROOM)
    reports = 0
    if services.reports.accepting:
        collection = services.reports.collection
        for language, text in REPORTS:
            added = collection.add(NewItem("report", "", text, language=language))
            reports += added.outcome != "duplicate"
    return {"articles": record.added, "reports": reports,
            "accepted": _first_reviews(services, reviewer)}


def _first_reviews(services: Any, reviewer: str) -> int:
    """The reviewer accepts, as suggested, the incident with the most sources and the
    oldest crowd report, once (nothing when an incident was decided before); then the
    incidents dataset is published. How many were accepted."""
    actor = services.identity.people.by_email(reviewer).actor()
    queue = services.review.queue(actor, limit=500)
    decided = sum(queue["counts"][s] for s in ("accepted", "rejected", "merged"))
    waiting = queue["incidents"]
    if decided or not waiting:
        return 0
    story = max(waiting, key=lambda i: i["items"])
    report = next((i for i in waiting if i["kinds"] == ["report"]), None)
    chosen = [i["id"] for i in (story, report) if i is not None]
    for incident in chosen:
        services.review.claim(actor, {"incident": incident})
        services.review.decide(actor, incident, {"action": "accept"})
    services.incidents.wait_idle(120)  # each decision publishes in the background
    services.incidents.publish()  # the last state, whatever a background run saw
    return len(chosen)


def _rfc822(day: str) -> str:
    return dt.datetime.fromisoformat(day).replace(hour=9, tzinfo=dt.UTC).strftime(
        "%a, %d %b %Y %H:%M:%S +0000")


def _same(path: Path, text: str) -> None:
    """Write ``text`` unless the file holds it already (a folder source reads a changed
    file again)."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
