"""Evidence spans, the data files and the offline guarantee."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from hub.osint.tagging import Tagger
from hub.osint.tagging.gazetteer import inflect
from hub.osint.tagging.lexicon import DATA, SUPPORTED_LANGUAGES, expand, lexicon, places
from hub.osint.tagging.taxonomy import CONTROL, EXPLOITATION_TYPES, GENDERS, RECRUITMENT

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 3, 18)


def test_every_evidence_span_points_at_its_text(tagger: Tagger) -> None:
    title = "Nigerian women freed in Turin raid"
    text = ("Italian police said on Tuesday that nine Nigerian women, aged 19 to 25, had been "
            "trafficked through Libya and forced into prostitution in Turin.\n\nTheir "
            "passports were confiscated.")
    found = tagger.tag(text, language="en", published=DAY, title=title)
    assert found.tags
    for tag in found.tags:
        for evidence in tag.evidence:
            source = title if evidence.part == "title" else text
            assert source[evidence.start:evidence.end] == evidence.text
            assert evidence.text in evidence.sentence
            assert evidence.sentence in source.replace("\n\n", " ") or \
                evidence.sentence in source


def test_a_location_carries_its_matched_surface(tagger: Tagger) -> None:
    text = "Nine Vietnamese men were forced to work in a nail bar in Glasgow."
    found = tagger.tag(text, language="en", published=DAY)
    surfaces = {(t.code, t.role): {e.text for e in t.evidence} for t in found.of("location")}
    assert surfaces == {("VN", "origin"): {"Vietnamese"}, ("GB", "destination"): {"Glasgow"}}


def test_the_lexicons_use_the_contracts_code_lists() -> None:
    """The tagger's code lists are the contracts' domains (contracts/domains/*.yaml)."""
    def domain(name: str) -> set[str]:
        cats = yaml.safe_load((ROOT / "contracts" / "domains" / f"{name}.yaml").read_text())
        return {c["code"] if isinstance(c, dict) else str(c) for c in cats["categories"]}

    assert set(EXPLOITATION_TYPES) == domain("htcds_exploitation_type")
    assert set(RECRUITMENT) == domain("htcds_recruitment")
    assert set(CONTROL) == domain("htcds_means_of_control")
    assert set(GENDERS) == domain("htcds_gender")
    for language in SUPPORTED_LANGUAGES:
        assert lexicon(language).language == language
    assert places().min_population >= places().town_population


def test_brace_expansion_and_inflection() -> None:
    assert expand("forced {labour,labor}") == ["forced labour", "forced labor"]
    assert expand("{sexually ,}exploited") == ["sexually exploited", "exploited"]
    assert inflect("nigérian", "fr") == ["nigérian", "nigériane", "nigérians", "nigérianes"]
    assert inflect("paraguayo", "es") == ["paraguayo", "paraguaya", "paraguayos", "paraguayas"]
    assert inflect("francés", "es") == ["francés", "francesa", "franceses", "francesas"]
    assert inflect("Nigerian", "en") == ["Nigerian", "Nigerians"]
    assert inflect("Vietnamese", "en") == ["Vietnamese"]


def test_data_files_ship_with_the_package() -> None:
    names = {p.name for p in DATA.glob("*.yaml")}
    assert {"en.yaml", "fr.yaml", "es.yaml", "countries.yaml", "places.yaml",
            "relevance.yaml"} <= names


def test_loading_and_tagging_need_no_network(tmp_path: Path) -> None:
    """In a fresh process whose sockets all fail, the tagger loads (every language) and
    tags: everything it reads is in installed packages."""
    script = tmp_path / "offline.py"
    script.write_text(textwrap.dedent("""
        import datetime as dt, socket

        class NoNetwork(OSError):
            pass

        def refuse(*args, **kwargs):
            raise NoNetwork("network access attempted")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.socket.sendto = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from hub.osint.tagging import Tagger

        tagger = Tagger()
        found = tagger.tag("Nine Nigerian women were forced into prostitution in Turin.",
                           language="en", published=dt.date(2026, 3, 18))
        assert ("NG", "origin") in found.locations(), found
        print("offline ok")
    """))
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                          text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "offline ok" in done.stdout
