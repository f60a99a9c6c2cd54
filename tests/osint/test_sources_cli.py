"""``tahub sources`` and ``tahub collect`` (typer's CliRunner, a real SQLite file), and the
admin API routes of sources on a real hub, with feeds served on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from hub.actors import Role
from hub.cli.main import app
from tests.api.conftest import Hub, running_hub
from tests.osint.feedserver import FeedServer, Route, articles, rss, serving

EN = articles("en")
runner = CliRunner()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serving() as started:
        yield started


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"TAHUB_DATA_DIR": str(tmp_path / "data"), "TAHUB_LOG_LEVEL": "WARNING",
            "TAHUB_FETCH_HOST_INTERVAL_SECONDS": "0", "TAHUB_FETCH_SHORT_TEXT": "100"}


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_sources_from_the_command_line(env: dict[str, str], server: FeedServer,
                                       tmp_path: Path) -> None:
    url = server.feed("/rss.xml", rss([(a, server.url(f"/n/{a.id}"), a.text)
                                       for a in EN[30:32]]), etag='"1"')
    code, out, _ = run(env, "sources", "add", "Coastal Herald", "--feed", url,
                       "--language", "en", "--every", "30", "--trust", "high")
    assert code == 0 and "every 30 min, trust high" in out
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a.txt").write_text(f"{EN[32].title}\n{EN[32].text}", encoding="utf-8")
    assert run(env, "sources", "add", "Drop", "--folder", str(folder))[0] == 0

    code, out, _ = run(env, "sources", "fetch", "Coastal Herald")
    assert code == 0 and "Coastal Herald: 2 found, 2 added, 0 duplicates, 0 skipped" in out
    code, out, _ = run(env, "collect", "--once")  # only the folder is due now
    assert code == 0 and "Drop: 1 found, 1 added" in out and "Coastal" not in out
    code, out, _ = run(env, "collect", "--once")
    assert code == 0 and "no source is due" in out
    code, out, _ = run(env, "collect", "--source", "Coastal Herald")
    assert code == 0 and "not modified since the last fetch (HTTP 304)" in out

    code, out, _ = run(env, "sources", "list")
    assert code == 0 and "Coastal Herald" in out and "not_modified" in out and "Drop" in out
    code, out, _ = run(env, "sources", "show", "Coastal Herald", "--json")
    shown = json.loads(out)
    assert [f["outcome"] for f in shown["fetches"]] == ["not_modified", "ok"]
    assert shown["trust"] == "high" and shown["every_minutes"] == 30

    assert run(env, "sources", "change", "Drop", "--every", "15", "--trust", "low")[0] == 0
    code, out, _ = run(env, "sources", "disable", "Drop")
    assert (code, out.strip()) == (0, "Drop disabled")
    code, out, _ = run(env, "sources", "list", "--json")
    drop = next(s for s in json.loads(out) if s["name"] == "Drop")
    assert (drop["enabled"], drop["every_minutes"], drop["trust"]) == (False, 15, "low")
    assert run(env, "sources", "enable", "Drop")[0] == 0
    code, _, err = run(env, "sources", "remove", "Drop")
    assert code == 1 and "disable it instead" in err

    server.routes["/bad.xml"] = Route(body=b"<html/>", content_type="text/html")
    run(env, "sources", "add", "Bad", "--feed", server.url("/bad.xml"))
    code, out, _ = run(env, "sources", "fetch", "Bad")
    assert code == 0 and "Bad: failed (HTTP 200): the answer is text/html, not a feed" in out
    code, out, _ = run(env, "sources", "show", "Bad")
    assert "failed" in out and "not a feed" in out
    assert run(env, "sources", "remove", "Bad")[0] == 0


@pytest.mark.parametrize(("args", "message"), [
    (("sources", "add", "X", "--feed", "ftp://a.example/"), "location: a feed's address is"),
    (("sources", "add", "X", "--feed", "https://a.example/", "--every", "2"),
     "every_minutes"),
    (("sources", "add", "X", "--feed", "https://a.example/", "--language", "de"),
     "language"),
    (("sources", "add", "X"), "give either --feed URL or --folder PATH"),
    (("sources", "add", "X", "--folder", "/no/such/place"), "no such folder"),
    (("sources", "show", "nothing"), "no source 'nothing'"),
    (("sources", "fetch", "nothing"), "no source 'nothing'"),
])
def test_bad_input_exits_1_with_the_reason(env: dict[str, str], args: tuple[str, ...],
                                           message: str) -> None:
    code, _, err = run(env, *args)
    assert code == 1 and message in err and "Traceback" not in err


# -- the API -------------------------------------------------------------------------------
@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with running_hub(tmp_path / "hub", fetch_host_interval_seconds=0.0, fetch_short_text=100,
                     collect=True,
                     collect_poll_seconds=1) as started:
        yield started


def wait_for(http: httpx.Client, source_id: str, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while True:
        fetches: list[dict[str, Any]] = http.get(
            f"/v1/osint/sources/{source_id}/fetches").json()
        if len(fetches) >= count and fetches[0]["outcome"] != "running":
            return fetches
        assert time.monotonic() < deadline, fetches
        time.sleep(0.1)


def test_the_admin_api_and_the_hubs_poller(hub: Hub, server: FeedServer,
                                           tmp_path: Path) -> None:
    with hub.authed(hub.member("Hub operator", (Role.ADMIN,))) as admin, \
            hub.authed(hub.member("A bank", (Role.PARTNER,))) as partner:
        check_api(admin, partner, server, tmp_path)


def check_api(admin: httpx.Client, partner: httpx.Client, server: FeedServer,
              tmp_path: Path) -> None:
    url = server.feed("/rss.xml", rss([(a, server.url(f"/n/{a.id}"), a.text)
                                       for a in EN[33:35]]))
    body = {"name": "Herald", "kind": "feed", "location": url, "language": "en",
            "every_minutes": 60, "trust": "high"}
    assert partner.post("/v1/osint/sources", json=body).status_code == 403
    created = admin.post("/v1/osint/sources", json=body)
    assert created.status_code == 201, created.text
    source = created.json()
    # the hub's poller (TAHUB_COLLECT=true) fetches the new source on its own
    (first,) = wait_for(admin, source["id"])
    assert (first["outcome"], first["added"]) == ("ok", 2), first

    started = admin.post(f"/v1/osint/sources/{source['id']}/fetch")
    assert started.status_code == 202 and started.json()["outcome"] in ("running", "ok")
    latest = wait_for(admin, source["id"], 2)[0]
    assert (latest["outcome"], latest["duplicates"], latest["added"]) == ("ok", 2, 0)

    changed = admin.patch(f"/v1/osint/sources/{source['id']}", json={"enabled": False})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    listed = admin.get("/v1/osint/sources").json()
    assert [s["name"] for s in listed] == ["Herald"]
    assert listed[0]["last_fetch"]["id"] == latest["id"]

    refused = admin.post("/v1/osint/sources", json={**body, "name": "Other",
                                                    "location": "file:///etc/passwd"})
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["field"] == "location"
    bad = admin.patch(f"/v1/osint/sources/{source['id']}", json={"every_minutes": 1})
    assert bad.status_code == 422 and bad.json()["field"] == "every_minutes"
    assert admin.post("/v1/osint/sources", json=body).status_code == 409
    assert admin.get("/v1/osint/sources/src_nope").status_code == 404
    assert admin.delete(f"/v1/osint/sources/{source['id']}").status_code == 409
    assert len(admin.get("/v1/osint/sources").json()) == 1  # nothing left behind

    empty = tmp_path / "empty"
    empty.mkdir()
    gone = admin.post("/v1/osint/sources", json={"name": "Empty", "kind": "folder",
                                                 "location": str(empty)}).json()
    wait_for(admin, gone["id"])
    assert admin.delete(f"/v1/osint/sources/{gone['id']}").status_code == 204
    assert admin.get(f"/v1/osint/sources/{gone['id']}").status_code == 404
