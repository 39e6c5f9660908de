"""Articles: fetch a page safely, read its Open Graph / standard metadata, and ready-made share text.

The fetcher only speaks http(s), follows at most 5 redirects and checks the resolved address of every
hop: only globally routable addresses are fetched (``ipaddress``'s ``is_global``, which also refuses
carrier-grade NAT 100.64.0.0/10, where one cloud's metadata service sits), unless
``settings.fetch_allow_private``. It reads at most 2 MB, and the whole fetch — every hop, every byte — has
one deadline, so a server that drips a byte every few seconds cannot hold it (it ends at most one read
timeout, 10 s, after the deadline).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from lxml import html as lxml_html

from service.errors import AppError, Invalid

log = logging.getLogger(__name__)

MAX_BYTES = 2 * 1024 * 1024
MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEADLINE_S = 20.0  # the whole fetch, redirects and body included
USER_AGENT = "RelaisArticleFetcher/0.1 (+https://github.com/relais)"

X_LIMIT = 280
X_URL_WEIGHT = 23  # every URL counts as 23 characters on X


class FetchFailed(AppError):
    status_code = 422
    code = "fetch_failed"
    status: int | None = None  # the HTTP status the server answered, when it answered one
    retry_after: str | None = None  # its Retry-After header (429, 503)


@dataclass
class PageMeta:
    url: str  # the final URL (after redirects), or og:url / canonical when given
    title: str = ""
    description: str = ""
    image_url: str | None = None
    site_name: str | None = None
    language: str | None = None
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- address checks


def _check_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Invalid(f"Only http and https pages can be fetched, not {parts.scheme or 'a relative URL'!r}.")
    if not parts.hostname:
        raise Invalid(f"{url[:100]!r} has no host name.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Invalid(f"{url[:100]!r} has an invalid port.") from None
    return parts.hostname, port


Resolver = Callable[[str, int], list[str]]  # (host, port) -> addresses, as text
AddressPolicy = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchFailed(f"The host {host!r} could not be resolved ({exc.strerror}).") from None
    return [str(info[4][0]) for info in infos]


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known prefix: the last 32 bits are an IPv4 address
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use translation (RFC 8215)


def globally_routable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Public internet addresses only: not private, loopback, link-local, CGNAT, reserved, documentation...
    IPv6 forms that carry an IPv4 address (NAT64, 6to4) are judged by that address; Teredo is refused."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL or ip.teredo is not None:
            return False
        if ip in _NAT64:
            return globally_routable(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            return globally_routable(ip.sixtofour)
    return ip.is_global and not ip.is_multicast


def any_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not ip.is_unspecified


def _resolve(host: str, port: int, *, resolver: Resolver, allowed: AddressPolicy) -> list[str]:
    """The addresses to connect to, each checked by the policy. The request then goes to exactly one of these
    (see `_pinned`), so a DNS answer that changes between the check and the connection (rebinding) cannot
    send it anywhere else. One refused address refuses the host."""
    addresses = []
    for raw in resolver(host, port):
        try:
            ip = ipaddress.ip_address(raw.split("%")[0])
        except ValueError:
            raise FetchFailed(f"The host {host!r} resolved to something that is not an address.") from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not allowed(ip):
            raise FetchFailed(
                f"The host {host!r} resolves to a private or local address; such pages are not fetched "
                "(set RELAIS_FETCH_ALLOW_PRIVATE=true to allow it on a trusted network)."
            )
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise FetchFailed(f"The host {host!r} has no address.")
    return addresses


def _pinned(url: str, ip: str) -> tuple[str, dict[str, str]]:
    """`url` with its host replaced by the checked address, and the Host header the server expects (TLS still
    verifies the certificate against the host name: the request carries it as `sni_hostname`)."""
    parts = urlsplit(url)
    host = f"[{ip}]" if ":" in ip else ip
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)), {"Host": parts.netloc.rsplit("@", 1)[-1]}


# ---------------------------------------------------------------- fetch


class _Deadline:
    """One deadline for the whole fetch, checked before every hop and after every chunk of a body. Each
    request's timeouts are cut to what is left, so a fetch ends at most one read timeout after it."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds
        self.seconds = seconds

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise FetchFailed(f"The page did not finish loading within {self.seconds:g} seconds; giving up.")
        return left

    def timeouts(self) -> dict[str, float]:
        left = self.remaining()
        return {k: min(v, left) for k, v in TIMEOUT.as_dict().items() if v is not None} | {"pool": left}


def _send(client: httpx.Client, url: str, host: str, addresses: list[str], deadline: _Deadline) -> httpx.Response:
    """GET `url` from the first of its checked addresses that accepts a connection (streamed: close it)."""
    for i, ip in enumerate(addresses):
        target, headers = _pinned(url, ip)
        request = client.build_request("GET", target, headers=headers, extensions={"sni_hostname": host})
        request.extensions["timeout"] = deadline.timeouts()  # httpx's own timeouts, cut to what is left
        try:
            return client.send(request, stream=True)
        except httpx.ConnectError:
            if i == len(addresses) - 1:
                raise
    raise AssertionError("unreachable: _resolve returns at least one address")


@dataclass
class Fetched:
    """One fetched resource: the final URL (after redirects), its status (200, or 304 for a conditional GET
    whose copy is still current), headers and body (empty on 304)."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes
    encoding: str | None


def fetch(
    url: str,
    *,
    accept: str,
    content_ok: Callable[[str], bool],
    what: str = "page",
    max_bytes: int = MAX_BYTES,
    headers: dict[str, str] | None = None,
    allow_private: bool = False,
    transport: httpx.BaseTransport | None = None,
    resolver: Resolver = system_resolver,
    allowed: AddressPolicy | None = None,
    deadline_s: float = DEADLINE_S,
) -> Fetched:
    """GET ``url`` through the address policy (every hop checked, ≤ 5 redirects, ≤ ``max_bytes`` read, within
    ``deadline_s``): the one fetcher of pages, feeds and images. ``content_ok(content_type)`` refuses the wrong
    kind of resource before its body is read; ``headers`` add conditional validators (a 304 is returned, not
    raised). HTTP errors raise FetchFailed with ``status`` and ``retry_after`` set."""
    policy = allowed or (any_address if allow_private else globally_routable)
    deadline = _Deadline(deadline_s)
    current = url.strip()
    limit = f"{max_bytes / (1024 * 1024):g} MB"
    # trust_env=False: no proxy from the environment may stand between the address check and the connection.
    with httpx.Client(
        timeout=TIMEOUT,
        follow_redirects=False,
        transport=transport,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept": accept, **(headers or {})},
    ) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            host, port = _check_url(current)
            addresses = _resolve(host, port, resolver=resolver, allowed=policy)
            try:
                response = _send(client, current, host, addresses, deadline)
                try:
                    if response.status_code == 304:  # before is_redirect, which counts 304 among redirects
                        return Fetched(current, 304, response.headers, b"", None)
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchFailed(f"{current[:100]} redirected without a Location header.")
                        current = urljoin(current, location)
                        continue
                    if response.status_code >= 400:
                        failed = FetchFailed(f"The {what} answered HTTP {response.status_code}.")
                        failed.status = response.status_code
                        failed.retry_after = response.headers.get("retry-after")
                        raise failed
                    ctype = response.headers.get("content-type", "")
                    if ctype and not content_ok(ctype.split(";")[0].strip().lower()):
                        raise FetchFailed(f"The {what} is not {_KIND.get(what, what)} ({ctype.split(';')[0]}).")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise FetchFailed(f"The {what} is larger than {limit}.")
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        deadline.remaining()  # a drip of bytes stops at the deadline
                        body.extend(chunk)
                        if len(body) > max_bytes:
                            raise FetchFailed(f"The {what} is larger than {limit}.")
                    return Fetched(current, response.status_code, response.headers, bytes(body),
                                   response.charset_encoding)  # fmt: skip
                finally:
                    response.close()
            except httpx.TimeoutException:
                deadline.remaining()  # names the overall deadline when that is what ran out
                raise FetchFailed(f"The {what} at {host} did not answer in time.") from None
            except httpx.HTTPError as exc:
                raise FetchFailed(f"The {what} could not be fetched: {type(exc).__name__}.") from None
    raise FetchFailed(f"More than {MAX_REDIRECTS} redirects; giving up.")


_KIND = {"page": "HTML", "feed": "an RSS or Atom feed", "image": "an image"}


def fetch_page(
    url: str,
    *,
    allow_private: bool = False,
    transport: httpx.BaseTransport | None = None,
    resolver: Resolver = system_resolver,
    allowed: AddressPolicy | None = None,
    deadline_s: float = DEADLINE_S,
) -> PageMeta:
    """Fetch ``url`` (≤ 5 redirects, ≤ 2 MB, within ``deadline_s``) and read its metadata. Raises
    Invalid/FetchFailed. ``resolver`` and ``allowed`` (the address policy: globally routable addresses only,
    or any address with ``allow_private``) are injected by tests."""
    got = fetch(url, accept="text/html,application/xhtml+xml", content_ok=lambda ctype: "html" in ctype,
                allow_private=allow_private, transport=transport, resolver=resolver, allowed=allowed,
                deadline_s=deadline_s)  # fmt: skip
    meta = parse_meta(got.body, got.url, encoding=got.encoding)
    log.info("newsletter.article.fetched", extra={"host": urlsplit(got.url).hostname, "bytes": len(got.body)})
    return meta


def parse_meta(body: bytes, url: str, *, encoding: str | None = None) -> PageMeta:
    """Open Graph first, then Twitter cards, then standard HTML metadata."""
    if not body.strip():
        return PageMeta(url=url)
    parser = lxml_html.HTMLParser(encoding=encoding) if encoding else None
    try:
        doc = lxml_html.document_fromstring(body, parser=parser)
    except (ValueError, Exception):  # lxml raises a zoo of errors on garbage
        return PageMeta(url=url)
    props: dict[str, str] = {}
    for meta in doc.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").strip().lower()
        content = (meta.get("content") or "").strip()
        if key and content and key not in props:
            props[key] = content
    title_el = doc.find(".//title")
    html_title = " ".join((title_el.text_content() if title_el is not None else "").split())
    canonical = next((link.get("href") for link in doc.iter("link")
                      if (link.get("rel") or "").lower() == "canonical" and link.get("href")), None)  # fmt: skip

    def first(*keys: str) -> str:
        return next((props[k] for k in keys if props.get(k)), "")

    image = first("og:image:secure_url", "og:image", "og:image:url", "twitter:image", "twitter:image:src")
    page_url = first("og:url") or canonical or url
    page_url = urljoin(url, page_url)
    if urlsplit(page_url).scheme not in ("http", "https"):
        page_url = url
    lang = doc.get("lang") or first("og:locale") or None
    return PageMeta(
        url=page_url,
        title=" ".join(first("og:title", "twitter:title").split()) or html_title,
        description=" ".join(first("og:description", "twitter:description", "description").split()),
        image_url=urljoin(url, image) if image else None,
        site_name=first("og:site_name", "application-name") or None,
        language=(lang or "")[:20] or None,
    )


# ---------------------------------------------------------------- share text


def x_weight(text: str) -> int:
    """X's weighted length: most Latin text counts 1 per character, CJK and emoji 2; every URL 23."""
    n = 0
    for ch in text:
        cp = ord(ch)
        light = cp <= 4351 or 8192 <= cp <= 8205 or 8208 <= cp <= 8223 or 8242 <= cp <= 8247
        n += 1 if light else 2
    return n


def x_length(text: str, hashtags: list[str]) -> int:
    """Length of the composed post: text, a space and the link (23), then ' #tag' for each hashtag."""
    length = x_weight(text) + (1 if text else 0) + X_URL_WEIGHT
    return length + sum(2 + x_weight(tag) for tag in hashtags)


def clean_hashtags(tags: list[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        tag = tag.strip().lstrip("#").strip()
        if not tag:
            continue
        if any(ch.isspace() or ch in "#,&?/" for ch in tag):
            raise Invalid(f"Hashtag {tag!r} may not contain spaces or any of # , & ? /.")
        if tag not in out:
            out.append(tag)
    return out


def check_x_text(text: str, hashtags: list[str]) -> None:
    total = x_length(text, hashtags)
    if total > X_LIMIT:
        raise Invalid(
            f"The X post would be {total} characters (the link counts as {X_URL_WEIGHT}, hashtags included); "
            f"shorten the text by {total - X_LIMIT}.",
            details={"field": "text_x", "length": total, "limit": X_LIMIT},
        )


def fit_x_text(text: str, hashtags: list[str]) -> str:
    """Trim a draft (e.g. the title) on a word boundary so the composed X post fits in 280."""
    text = " ".join(text.split())
    budget = X_LIMIT - x_length("", hashtags) - 1
    if x_weight(text) <= budget:
        return text
    out = ""
    for word in text.split(" "):
        candidate = f"{out} {word}".strip()
        if x_weight(candidate) + 1 > budget:  # room for the ellipsis
            break
        out = candidate
    return (out or text[: max(budget - 1, 0)]) + "…"


def default_share_texts(title: str, description: str, hashtags: list[str]) -> dict[str, str]:
    """Drafts comms can rewrite: X gets the title trimmed to fit, LinkedIn and Facebook title + summary."""
    long_text = title if not description else f"{title}\n\n{description}"
    return {"text_x": fit_x_text(title, hashtags), "text_linkedin": long_text[:3000], "text_facebook": long_text[:3000]}
