"""Server-side requests go only where they should: the article fetcher reaches globally routable addresses
only, on every hop, within one deadline; the Google connection asks Google's token endpoint, not the one an
uploaded key names.

Nothing here opens a connection outside loopback (tests/netguard.py would fail the test): addresses that are
not loopback come from an injected resolver, and are refused before any connection.
"""

import ipaddress
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsletter.articles import FetchFailed, fetch_page, globally_routable
from service.models import Role
from tests.fakes.google import fake_google

NOT_GLOBAL = [
    "100.64.0.1", "100.127.255.254",  # carrier-grade NAT (one cloud's metadata service sits there)
    "10.0.0.1", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "0.0.0.0", "192.0.2.1",
    "198.18.0.1", "240.0.0.1", "255.255.255.255", "224.0.0.1", "::1", "fd00::1", "fe80::1", "::ffff:100.64.0.1",
    "::ffff:10.0.0.1", "64:ff9b:1::a00:1", "64:ff9b::a9fe:a9fe", "2002:a00:1::1", "2001:0:4136:e378::1", "2001:db8::1",
]  # fmt: skip
GLOBAL = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"]


def _ip(text: str):
    ip = ipaddress.ip_address(text)
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip


@pytest.mark.parametrize("address", NOT_GLOBAL)
def test_policy_refuses_every_address_that_is_not_globally_routable(address):
    assert not globally_routable(_ip(address))


@pytest.mark.parametrize("address", GLOBAL)
def test_policy_accepts_public_addresses(address):
    assert globally_routable(_ip(address))


@pytest.mark.parametrize("address", ["100.64.0.1", "::ffff:100.64.0.1", "169.254.169.254", "10.1.2.3"])
def test_fetch_refuses_before_connecting(address):
    asked = []

    def resolver(host, port):
        asked.append((host, port))
        return [address]

    with pytest.raises(FetchFailed, match="private or local"):
        fetch_page("http://metadata.example/latest/meta-data/", resolver=resolver)
    assert asked == [("metadata.example", 80)]


def test_one_bad_address_among_several_refuses_the_host():
    with pytest.raises(FetchFailed, match="private or local"):
        fetch_page("https://mixed.example/", resolver=lambda h, p: ["93.184.216.34", "100.64.0.1"])


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", "http://internal.example/secret")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            try:
                for _ in range(600):
                    self.wfile.write(b"<")
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass


@pytest.fixture
def loopback_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_every_hop_is_checked(loopback_server):
    """public.example is (for this test) the loopback server, treated as public; it redirects to a host that
    resolves into 100.64.0.0/10: the second hop is refused before it connects."""
    names = {"public.example": ["127.0.0.1"], "internal.example": ["100.64.0.7"]}
    resolved = []

    def resolver(host, port):
        resolved.append(host)
        return names[host]

    def policy(ip):
        return ip.is_loopback or globally_routable(ip)

    with pytest.raises(FetchFailed, match="internal.example"):
        fetch_page(f"http://public.example:{loopback_server}/hop", resolver=resolver, allowed=policy)
    assert resolved == ["public.example", "internal.example"]


def test_a_slow_drip_is_cut_at_the_deadline(loopback_server):
    with pytest.raises(FetchFailed, match="within 1 seconds"):
        fetch_page(f"http://127.0.0.1:{loopback_server}/drip", allow_private=True, deadline_s=1.0)


# ---------------------------------------------------------------- Google's token endpoint


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        _Recorder.hits.append(self.path)
        body = json.dumps({"internal": "answer the attacker wants to read"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_google_key_token_uri_is_ignored(app, client, tenant, settings):
    """A key whose token_uri names an internal host: the connection test asks Google's endpoint (here the
    fake, via the setting) and never the host in the key."""
    internal = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=internal.serve_forever, daemon=True).start()
    _Recorder.hits = []
    try:
        with fake_google() as fake:
            fake.add_user("admin@example.com", admin=True)
            settings.google_api_endpoint = fake.url
            settings.google_token_uri = fake.token_uri
            key = dict(fake.service_account_info(), token_uri=f"http://127.0.0.1:{internal.server_address[1]}/x")
            r = client.put(
                "/api/connections/google",
                headers=tenant.headers(Role.it),
                json={"config": {"admin_subject": "admin@example.com"}, "secret": json.dumps(key)},
            )
            assert r.status_code == 200, r.text
            result = client.post("/api/connections/google/test", headers=tenant.headers(Role.it))
            assert result.status_code == 200, result.text
            assert "attacker" not in result.text
        assert _Recorder.hits == []
    finally:
        internal.shutdown()
        internal.server_close()


def test_the_default_token_endpoint_is_googles():
    from service.settings import Settings

    assert Settings().google_token_uri == "https://oauth2.googleapis.com/token"
