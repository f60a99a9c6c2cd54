"""A real HTTP server on loopback for the sources' tests: feeds, article pages, and the
bad answers a news site can give (redirects elsewhere, huge bodies, gzip bombs, wrong
content types, malformed feeds, slow answers).

Each route is a :class:`Route`: a status, headers and body, with options (honours
conditional requests, sleeps before answering, drips the body slowly, streams a body of
a given size without holding it). Every request is logged (path, headers) for the tests.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["Article", "FeedServer", "Route", "articles", "atom", "page", "rss", "serving"]

CORPUS = Path(__file__).resolve().parents[2] / "bench" / "corpus" / "tagging" / "dev.jsonl"


@dataclass(frozen=True)
class Article:
    id: str
    language: str
    title: str
    text: str
    published: str  # YYYY-MM-DD


def articles(language: str = "en", relevant: bool = True) -> list[Article]:
    """Short fictitious articles of the tagging corpus's development part (never the
    held-out part)."""
    out = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["kind"] == "article" and row["language"] == language and \
                row["relevant"] is relevant:
            out.append(Article(row["id"], row["language"], row["title"], row["text"],
                               row["published"]))
    return out


def _rfc822(day: str) -> str:
    import datetime as dt

    return format_datetime(dt.datetime.fromisoformat(day + "T08:00:00+00:00"), usegmt=True)


def rss(items: list[tuple[Article, str, str]], *, language: str = "en") -> bytes:
    """An RSS 2.0 feed; each item (article, link, description: its text or a teaser)."""
    parts = [f"<item><title>{escape(a.title)}</title><link>{escape(link)}</link>"
             f"<guid>{escape(link)}</guid><pubDate>{_rfc822(a.published)}</pubDate>"
             f"<description>{escape(description)}</description></item>"
             for a, link, description in items]
    return ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
            f"<title>Coastal Herald</title><link>http://news.example/</link>"
            f"<language>{language}</language><description>News</description>"
            + "".join(parts) + "</channel></rss>").encode()


def atom(items: list[tuple[Article, str, str]], *, language: str = "fr") -> bytes:
    parts = [f'<entry><title>{escape(a.title)}</title><link href="{escape(link)}"/>'
             f"<id>{escape(link)}</id><updated>{a.published}T08:00:00Z</updated>"
             f'<content type="html">{escape("<p>" + text + "</p>")}</content></entry>'
             for a, link, text in items]
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{language}">'
            "<title>Le Courrier du Littoral</title><id>urn:x</id>"
            "<updated>2026-01-01T00:00:00Z</updated>" + "".join(parts) + "</feed>").encode()


def page(article: Article) -> bytes:
    """An article page as news sites make them: menus, the story, a footer."""
    paragraphs = "".join(f"<p>{escape(s.strip())}.</p>" for s in article.text.split(". ")
                         if s.strip())
    return (f"<!DOCTYPE html><html lang='{article.language}'><head><meta charset='utf-8'>"
            f"<title>{escape(article.title)} | Coastal Herald</title>"
            f"<meta property='article:published_time' content='{article.published}'>"
            "</head><body><nav><ul><li><a href='/'>Home</a></li><li><a href='/world'>World"
            "</a></li><li><a href='/sport'>Sport</a></li></ul></nav><main><article>"
            f"<h1>{escape(article.title)}</h1>{paragraphs}</article></main>"
            "<footer><p>Coastal Herald, all rights reserved. Subscribe to our newsletter."
            "</p></footer></body></html>").encode()


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # answer 304 to If-None-Match of this tag
    last_modified: str | None = None  # answer 304 to If-Modified-Since of this date
    delay: float = 0.0  # seconds before the answer
    drip: float = 0.0  # seconds between 1 KiB pieces of the body
    size: int | None = None  # stream this many bytes of "a" instead of body


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str], float]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append((self.path, headers, time.monotonic()))
                route = server.routes.get(self.path)
                if route is None:
                    return self._send(404, {"Content-Type": "text/plain"}, b"not found")
                if route.delay:
                    time.sleep(route.delay)
                out = {"Content-Type": route.content_type, **route.headers}
                if route.etag:
                    out["ETag"] = route.etag
                if route.last_modified:
                    out["Last-Modified"] = route.last_modified
                if (route.etag and headers.get("if-none-match") == route.etag) or (
                        route.last_modified and
                        headers.get("if-modified-since") == route.last_modified):
                    return self._send(304, out, b"")
                if route.size is not None:
                    return self._stream(route, out)
                return self._send(route.status, out, route.body, drip=route.drip)

            def _send(self, status: int, headers: dict[str, str], body: bytes,
                      drip: float = 0.0) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if not drip:
                        self.wfile.write(body)
                        return
                    for start in range(0, len(body), 1024):
                        self.wfile.write(body[start:start + 1024])
                        self.wfile.flush()
                        time.sleep(drip)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _stream(self, route: Route, headers: dict[str, str]) -> None:
                assert route.size is not None
                self.send_response(route.status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")  # no length announced
                self.end_headers()
                piece = b"a" * 65536
                try:
                    left = route.size
                    while left > 0:
                        part = piece[:min(left, len(piece))]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                        left -= len(part)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[dict[str, str]]:
        return [h for p, h, _ in self.requests if p == path]

    def feed(self, path: str, body: bytes, **options: Any) -> str:
        self.routes[path] = Route(body=body, **options)
        return self.url(path)

    def html(self, path: str, body: bytes, **options: Any) -> str:
        self.routes[path] = Route(body=body, content_type="text/html; charset=utf-8",
                                  **options)
        return self.url(path)


def gzip_bomb(decoded: int) -> bytes:
    """A gzip body of ``decoded`` zero bytes (a few KiB per MiB decoded)."""
    return gzip.compress(b"\0" * decoded, compresslevel=9)


@contextmanager
def serving() -> Iterator[FeedServer]:
    server = FeedServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=10)
