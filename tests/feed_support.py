"""A local feed server (127.0.0.1 only): RSS 2.0 with ETag, Atom with Last-Modified (both answer 304 to their
validators), a malformed feed, a huge one, a redirect to a private host, throttling, server errors, article
pages with Open Graph tags and an image."""

from __future__ import annotations

import http.server
import io
import threading

from PIL import Image

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Le blog</title><link>{base}/</link>
<item><title>Un</title><link>{base}/article/one?utm_source=rss&amp;fbclid=abc</link>
  <description>&lt;p&gt;Premier &lt;b&gt;article&lt;/b&gt;&lt;/p&gt;</description>
  <pubDate>Mon, 30 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title>Deux</title><link>{base}/article/two/</link><description>Second</description></item>
<item><title>Sans lien</title><description>Ignored: no link</description></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Secteur</title>
<id>urn:x</id><updated>2026-11-30T08:00:00Z</updated>
<entry><title>Un (repris)</title><link href="{upper}/article/one"/><id>urn:1</id>
  <updated>2026-11-30T08:00:00Z</updated></entry>
<entry><title>Trois</title><link href="{base}/article/three"/><id>urn:3</id><updated>2026-11-29T08:00:00Z</updated>
<summary>Le troisième</summary></entry>
</feed>"""

PAGE = """<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Fallback</title>
<meta property="og:title" content="Page {slug}"><meta property="og:description" content="Description {slug}.">
<meta property="og:image" content="/img/{slug}.png"><meta property="og:site_name" content="Le Blog">
{canonical}</head><body></body></html>"""

ETAG = '"rss-v1"'
LAST_MODIFIED = "Mon, 30 Nov 2026 08:00:00 GMT"


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), "#1F3A5F").save(buf, "PNG")
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/xml", headers: dict | None = None):
        self.send_response(status)
        if body or status == 200:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.requests.append((self.path, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")))
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        path = self.path.split("?")[0]
        if path == "/rss.xml":
            if self.headers.get("If-None-Match") == ETAG:
                return self._send(304, headers={"ETag": ETAG})
            return self._send(200, RSS.format(base=base).encode(), "application/rss+xml", {"ETag": ETAG})
        if path == "/atom.xml":
            if self.headers.get("If-Modified-Since") == LAST_MODIFIED:
                return self._send(304)
            body = ATOM.format(base=base, upper=base.upper()).encode()  # HTTP://...: the same canonical URL
            return self._send(200, body, "application/atom+xml", {"Last-Modified": LAST_MODIFIED})
        if path == "/many.xml":
            items = "".join(f"<item><title>N{i}</title><link>{base}/article/n{i}</link></item>" for i in range(5))
            return self._send(200, f'<rss version="2.0"><channel><title>Many</title>{items}</channel></rss>'.encode())
        if path == "/broken.xml":
            return self._send(200, b"{this is: not a feed, <nor> xml", "application/xml")
        if path == "/huge.xml":  # no Content-Length: the reader's limit has to stop it
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.end_headers()
            self.wfile.write(b'<rss version="2.0"><channel>' + b"<item><title>x</title></item>" * 60000)
            srv.huge_sent = True
            return None
        if path == "/hop.xml":
            return self._send(302, headers={"Location": "http://internal.example/feed.xml", "Content-Length": "0"})
        if path == "/throttle.xml":
            return self._send(429, b"slow down", "text/plain", {"Retry-After": "120"})
        if path == "/down.xml":
            return self._send(503, b"down", "text/plain")
        if path.startswith("/article/"):
            slug = path.rstrip("/").rsplit("/", 1)[1]
            canonical = f'<link rel="canonical" href="{base}/article/two">' if slug == "two-alias" else ""
            return self._send(200, PAGE.format(slug=slug, canonical=canonical).encode(), "text/html; charset=utf-8")
        if path.startswith("/img/"):
            return self._send(200, png(), "image/png")
        if path == "/not-an-image.png":
            return self._send(200, b"<html>nope</html>", "image/png")
        return self._send(404, b"no", "text/plain")


def start_feeds() -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.requests = []
    server.huge_sent = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
