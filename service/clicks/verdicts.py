"""Who fetched a tracked link: a person, a mail security scanner, or a link-preview crawler.

Every request gets a verdict and short reason codes (see docs/campaigns-and-clicks.md). Scanners and
crawlers are still redirected (a refused scanner marks the link as dead); they are only labelled.

Reason codes (`Reason`)
  scanner:  ua_empty, ua_script, ua_scanner, ip_scanner, prefetch, burst
  crawler:  ua_preview, ua_bot
  human:    (none)
  image loads only, with any verdict: image_proxy (a mail provider's image proxy fetched the banner)
"""

import ipaddress
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from service.clicks.models import Verdict
from service.links import Channel, ResolvedLink


class Reason(StrEnum):
    """Why a request got its verdict; stored comma-separated in the click and impression rows."""

    ua_empty = "ua_empty"  # no user agent, or a few characters
    ua_script = "ua_script"  # a program (curl, an HTTP library, a headless browser), or not a browser at all
    ua_scanner = "ua_scanner"  # a mail security gateway or URL scanner that names itself
    ip_scanner = "ip_scanner"  # from a mail security gateway's published ranges
    prefetch = "prefetch"  # a prefetch or preview request header
    burst = "burst"  # a second, different link of the same message within BURST_WINDOW
    ua_preview = "ua_preview"  # a link-preview crawler (LinkedIn, Slack, ...)
    ua_bot = "ua_bot"  # another robot
    image_proxy = "image_proxy"  # an image load through a mail provider's image proxy (not a verdict change)


# Link-preview crawlers: they read the target's Open Graph tags; a first fetch means the post went out.
PREVIEW_RE = re.compile(
    r"linkedinbot|twitterbot|facebookexternalhit|facebookcatalog|meta-externalagent|slackbot|slack-imgproxy|"
    r"discordbot|whatsapp/|telegrambot|skypeuripreview|microsoftpreview|redditbot|pinterestbot|"
    r"embedly|iframely|mastodon|bluesky|cardyb|vkshare|xing-contenttabreceiver|applebot|google-inspectiontool|"
    r"outlook-ios-linkpreview|yahoo link preview|bitlybot",
    re.IGNORECASE,
)
# Mail security gateways and URL scanners that announce themselves.
SCANNER_RE = re.compile(
    r"barracuda|proofpoint|mimecast|urldefense|safelinks|trendmicro|trend micro|symantec|messagelabs|"
    r"forcepoint|sophos|zscaler|fireeye|trellix|paloalto|cisco|ironport|fortiguard|fortinet|checkpoint|"
    r"cloudmark|vade|spamtitan|hornetsecurity|libraesva|avanan|abnormal|ms-office|microsoft office|"
    r"bingpreview|virustotal|urlscan|phishtank|netcraft|kaspersky|bitdefender|mcafee|webroot|"
    r"avast|nessus|qualys|security|scanner",
    re.IGNORECASE,
)
# Programs rather than browsers.
SCRIPT_RE = re.compile(
    r"^(curl|wget|python|go-http-client|java/|okhttp|apache-httpclient|libwww|lwp|ruby|php|perl|axios|"
    r"node-fetch|undici|got |aiohttp|httpx|requests|postmanruntime|insomnia|powershell|winhttp|"
    r"microsoft bits|reqwest|dart|http_request)|headlesschrome|phantomjs|puppeteer|playwright|"
    r"selenium|scrapy|python-requests|python-urllib",
    re.IGNORECASE,
)
BOT_RE = re.compile(r"bot\b|bot/|spider|crawl|slurp|preview|fetcher|monitor|checker", re.IGNORECASE)
BROWSER_RE = re.compile(r"^Mozilla/5\.0 \(|^Opera/", re.IGNORECASE)

# Published sending/scanning ranges of the big mail security gateways.
SCANNER_NETWORKS = [ipaddress.ip_network(n) for n in (
    # Microsoft Exchange Online Protection / Defender Safe Links
    "40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17", "2a01:111:f400::/48", "2a01:111:f403::/49",
    # Proofpoint
    "67.231.144.0/20", "148.163.128.0/19", "205.220.160.0/19", "185.183.28.0/22", "185.132.180.0/22",
    # Mimecast
    "205.139.110.0/24", "207.211.30.0/24", "207.211.31.0/25", "185.58.84.0/22", "91.220.42.0/24",
    "146.101.78.0/24", "195.130.217.0/24", "41.74.192.0/22", "103.96.20.0/22", "124.47.150.0/24",
    # Barracuda
    "64.235.144.0/20", "209.222.80.0/21", "35.170.131.132/32", "18.233.2.219/32",
    # Cisco IronPort / Secure Email cloud
    "68.232.128.0/19", "216.71.144.0/20",
    # Trend Micro Email Security
    "18.208.22.64/26", "150.70.226.0/24", "216.99.131.0/24",
    # Symantec / Broadcom Email Security.cloud (MessageLabs)
    "67.219.240.0/20", "85.158.136.0/21", "193.109.254.0/23", "194.106.220.0/23", "195.245.230.0/23",
    "216.82.240.0/20",
    # Sophos Email
    "85.10.192.0/26", "52.37.216.128/26",
)]  # fmt: skip

# Mail providers' image proxies (Gmail, Yahoo) fetching a banner on the reader's behalf.
IMAGE_PROXY_RE = re.compile(r"googleimageproxy|ggpht\.com|yahoomailproxy|via ggpht", re.IGNORECASE)

PREFETCH_HEADERS = (("purpose", "prefetch"), ("sec-purpose", "prefetch"), ("x-purpose", "preview"),
                    ("x-purpose", "prefetch"), ("x-moz", "prefetch"))  # fmt: skip

BURST_WINDOW = 2.0  # seconds: a scanner opens every link of one message within a second or two


@dataclass(frozen=True, slots=True)
class Classified:
    verdict: Verdict
    reasons: tuple[Reason, ...] = ()

    @property
    def reason_text(self) -> str:
        return ",".join(self.reasons)


@lru_cache(maxsize=65536)
def scanner_address(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in SCANNER_NETWORKS)


@lru_cache(maxsize=8192)
def _agent_reasons(ua: str) -> tuple[Verdict, tuple[Reason, ...]]:
    ua = ua.strip()
    if not ua or ua == "-" or len(ua) < 8:
        return Verdict.scanner, (Reason.ua_empty,)
    if PREVIEW_RE.search(ua):
        return Verdict.crawler, (Reason.ua_preview,)
    if SCRIPT_RE.search(ua):
        return Verdict.scanner, (Reason.ua_script,)
    if SCANNER_RE.search(ua):
        return Verdict.scanner, (Reason.ua_scanner,)
    if BOT_RE.search(ua):
        return Verdict.crawler, (Reason.ua_bot,)
    if not BROWSER_RE.search(ua):
        return Verdict.scanner, (Reason.ua_script,)
    return Verdict.human, ()


def classify(*, user_agent: str | None, ip: str | None, headers: Mapping[str, str] | None = None,
             burst: bool = False, image_load: bool = False) -> Classified:  # fmt: skip
    """The verdict for one request. `headers` maps lower-case header names to values; `image_load`: a banner
    image fetched (an image proxy is noted among the reasons, and does not change the verdict)."""
    verdict, reasons = _agent_reasons((user_agent or "")[:512])
    extra: list[Reason] = []
    if scanner_address(ip):
        extra.append(Reason.ip_scanner)
    if headers:
        for name, value in PREFETCH_HEADERS:
            got = headers.get(name)
            if got is not None and value in got.lower():
                extra.append(Reason.prefetch)
                break
    if burst:
        extra.append(Reason.burst)
    if extra:
        # Address, prefetch and burst evidence make it a scanner, even behind a browser-like agent.
        if verdict is not Verdict.crawler:
            verdict = Verdict.scanner
        reasons = (*reasons, *extra)
    if image_load and user_agent and IMAGE_PROXY_RE.search(user_agent):
        reasons = (*reasons, Reason.image_proxy)
    return Classified(verdict, reasons)


# What the earlier hits of a burst become: human clicks of the window turn into scanner ones (recorder applies it).
BURST_RELABEL = Classified(Verdict.scanner, (Reason.burst,))


def message_key(link: ResolvedLink) -> tuple | None:
    """Links that sit in one email together (a signature, or one newsletter issue for one employee): hitting two
    of them within the window is a burst."""
    if link.employee_id is None:  # unattributed links of many people's messages are not one message
        return None
    if link.channel in (Channel.signature_banner, Channel.signature_field):
        return ("sig", link.org_id, link.employee_id)
    if link.channel in (Channel.newsletter, Channel.share_intent) and link.issue_id is not None:
        return ("issue", link.org_id, link.issue_id, link.employee_id)
    return None


def burst_since(now: datetime) -> datetime:
    """The earliest hit a burst seen at `now` relabels (the window, with a margin for clock steps)."""
    return now - timedelta(seconds=BURST_WINDOW + 0.5)


class BurstDetector:
    """Remembers, per visitor and message, which links were hit in the last BURST_WINDOW seconds.

    A message is one employee's signature (all its banner and field links) or one newsletter issue for one
    employee. Hitting a second distinct link of the same message within the window is a burst: the later
    hit is a scanner, and the earlier hits of the window are relabelled (see recorder.relabel_burst).
    In-process memory only; several web processes each see their own share (the earlier-hit relabelling
    in the database covers what a single process can't see).
    """

    def __init__(self, window: float = BURST_WINDOW, max_keys: int = 200_000):
        self.window = window
        self.max_keys = max_keys
        self._seen: dict[tuple, deque] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def hit(self, key: tuple, link_id: int, now: float | None = None) -> list[int]:
        """Note a hit; return the other links of the same message hit within the window (empty: no burst)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._last_sweep > self.window * 5 or len(self._seen) > self.max_keys:
                self._sweep(now)
            hits = self._seen.get(key)
            if hits is None:
                hits = self._seen[key] = deque()
            while hits and now - hits[0][0] > self.window:
                hits.popleft()
            others = sorted({other for _t, other in hits if other != link_id})
            hits.append((now, link_id))
            if len(hits) > 64:  # one visitor hammering one message: the verdict is settled already
                hits.popleft()
            return others

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        stale = [k for k, v in self._seen.items() if not v or now - v[-1][0] > self.window]
        for k in stale:
            del self._seen[k]
        if len(self._seen) > self.max_keys:
            self._seen.clear()
