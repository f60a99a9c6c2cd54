"""The web as a source sees it: polite, bounded HTTP GETs (httpx).

::

    Web.get(url, allowed=Hosts(...), etag=..., last_modified=...)
        scheme http(s)?  host allowed?            -> Refused("... not allowed")
        wait for the host's turn (Pacer)          at most one request per host per interval
        GET, no automatic redirects               a redirect is followed (5 at most) only
                                                  to an allowed host, http(s) only
        stream the body                           stop at max_bytes as sent; decompress
                                                  (gzip, deflate) ourselves, bounded by
                                                  max_decoded: a bomb stops within a chunk
        -> Page(status, url, content_type, etag, last_modified, body)

Every failure (a refused address, a timeout, a connection error, an HTTP error status, a
body over a limit, an unknown content encoding) is a :class:`Refused` with a reason for the
fetch record and the HTTP status when there was one; httpx's exceptions never leave this
module. A 304 (conditional request) is a :class:`Page` with no body.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit

import httpx

__all__ = ["Hosts", "Pacer", "Page", "Refused", "Web", "host_of"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Refused(Exception):
    """A request that gave nothing usable: ``reason`` for the fetch record, ``status`` the
    HTTP status when the server answered."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def host_of(url: str) -> str:
    """``host`` for a URL on its scheme's default port, ``host:port`` otherwise (lower case;
    IPv6 in brackets); an URL without a host is :class:`Refused`."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise Refused(f"only http and https addresses are fetched, not {scheme or 'none'}:")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise Refused("the address has an invalid port") from None
    if not host:
        raise Refused("the address has no host")
    shown = f"[{host}]" if ":" in host else host
    return shown if port in (None, _DEFAULT_PORTS[scheme]) else f"{shown}:{port}"


@dataclass(frozen=True, slots=True)
class Hosts:
    """The hosts a source may reach: its own (the feed's) and the ones listed for it. A name
    without a port means the default ports (80, 443); ``host:port`` that port only."""

    names: frozenset[str]

    @classmethod
    def of(cls, url: str, extra: Iterable[str] = ()) -> Hosts:
        return cls(frozenset({host_of(url), *(h.lower() for h in extra)}))

    def allows(self, url: str) -> bool:
        return host_of(url) in self.names

    def check(self, url: str, what: str) -> None:
        host = host_of(url)
        if host not in self.names:
            raise Refused(f"{what} to {host} is not allowed: only "
                          f"{', '.join(sorted(self.names))} (add the host to the source)")


class Pacer:
    """At most one request per host every ``interval`` seconds (per process, every source
    and thread sharing it): :meth:`wait` blocks until the host's turn."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = interval
        self._clock, self._sleep = clock, sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str) -> None:
        with self._lock:  # book the slot, then sleep outside the lock
            now = self._clock()
            slot = max(now, self._next.get(host, now))
            self._next[host] = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


@dataclass(frozen=True, slots=True)
class Page:
    """One answer: its final ``url`` (after redirects), the media type without parameters
    (``text/html``), its charset if declared, validators for the next conditional request,
    and the decoded body (empty for a 304)."""

    status: int
    url: str
    content_type: str
    charset: str | None
    etag: str | None
    last_modified: str | None
    body: bytes

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class _Decoder:
    """Content-Encoding gzip or deflate (or none), at most ``limit`` bytes out in all."""

    def __init__(self, encoding: str, limit: int) -> None:
        encoding = encoding.strip().lower()
        self.limit = limit
        self.size = 0
        if encoding in ("", "identity"):
            self._z: zlib._Decompress | None = None
        elif encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise Refused(f"the answer is encoded as {encoding!r}, which is not asked for")
        self._deflate = encoding == "deflate"

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if self._z is None:
            yield self._count(chunk)
            return
        data = chunk
        while data:
            room = self.limit - self.size + 1
            try:
                out = self._z.decompress(data, room)
            except zlib.error:
                if self._deflate and self.size == 0:  # raw deflate, without zlib's header
                    self._z, self._deflate = zlib.decompressobj(-zlib.MAX_WBITS), False
                    continue
                raise Refused("the compressed answer is corrupt") from None
            yield self._count(out)
            data = self._z.unconsumed_tail

    def _count(self, out: bytes) -> bytes:
        self.size += len(out)
        if self.size > self.limit:
            raise Refused(f"the answer decompresses to more than {self.limit:,} bytes "
                          "(TAHUB_FETCH_MAX_DECODED_BYTES): refused as a decompression bomb")
        return out


def _media(content_type: str) -> tuple[str, str | None]:
    message = Message()
    message["content-type"] = content_type or "application/octet-stream"
    charset = message.get_param("charset")
    return message.get_content_type(), (charset if isinstance(charset, str) else None)


class Web:
    """Bounded, polite GETs (module docstring). One per process: its :class:`Pacer` and its
    connection pool are shared by every fetch. ``transport`` replaces the network (tests of
    the limits use a real server on loopback instead)."""

    def __init__(self, *, user_agent: str, timeout: float, max_bytes: int, max_decoded: int,
                 pacer: Pacer, transport: httpx.BaseTransport | None = None) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_decoded = max_decoded
        self.pacer = pacer
        self._client = httpx.Client(
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(timeout), follow_redirects=False, transport=transport,
            trust_env=False)

    def close(self) -> None:
        self._client.close()

    def get(self, url: str, *, allowed: Hosts, accept: str, etag: str | None = None,
            last_modified: str | None = None) -> Page:
        """GET ``url`` (module docstring); ``etag``/``last_modified`` make it conditional."""
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        allowed.check(url, "a request")
        for _ in range(_MAX_REDIRECTS + 1):
            self.pacer.wait(host_of(url))
            page = self._once(url, headers, time.monotonic() + self.timeout)
            if isinstance(page, Page):
                return page
            url = page
            allowed.check(url, "a redirect")
        raise Refused(f"more than {_MAX_REDIRECTS} redirects")

    def _once(self, url: str, headers: dict[str, str], deadline: float) -> Page | str:
        """One request: a :class:`Page`, or the URL a redirect points to."""
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                if status in _REDIRECTS:
                    target = response.headers.get("location")
                    if not target:
                        raise Refused(f"HTTP {status} without a Location", status)
                    return urljoin(url, target)
                media, charset = _media(response.headers.get("content-type", ""))
                page = Page(status=status, url=url, content_type=media, charset=charset,
                            etag=response.headers.get("etag"),
                            last_modified=response.headers.get("last-modified"), body=b"")
                if status == 304:
                    return page
                if status >= 400 or status < 200:
                    raise Refused(f"HTTP {status} {response.reason_phrase}".strip(), status)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise Refused(f"the answer is {int(declared):,} bytes, more than "
                                  f"{self.max_bytes:,} (TAHUB_FETCH_MAX_BYTES)", status)
                body = self._read(response, deadline, status)
                return Page(status=status, url=url, content_type=media, charset=charset,
                            etag=page.etag, last_modified=page.last_modified, body=body)
        except httpx.TimeoutException:
            raise Refused(f"no answer within {self.timeout:g} s "
                          "(TAHUB_FETCH_TIMEOUT_SECONDS)") from None
        except httpx.HTTPError as exc:
            raise Refused(f"the request failed ({type(exc).__name__})") from None

    def _read(self, response: httpx.Response, deadline: float, status: int) -> bytes:
        decoder = _Decoder(response.headers.get("content-encoding", ""), self.max_decoded)
        parts: list[bytes] = []
        sent = 0
        for chunk in response.iter_raw():
            sent += len(chunk)
            if sent > self.max_bytes:
                raise Refused(f"the answer is longer than {self.max_bytes:,} bytes "
                              "(TAHUB_FETCH_MAX_BYTES): reading stopped", status)
            if time.monotonic() > deadline:
                raise Refused(f"the answer took longer than {self.timeout:g} s "
                              "(TAHUB_FETCH_TIMEOUT_SECONDS)", status)
            try:
                parts.extend(decoder.feed(chunk))
            except Refused as refused:
                raise Refused(refused.reason, status) from None
        return b"".join(parts)
