"""One URL per article, however feeds spell it: the key suggestions are de-duplicated by.

Lower-case scheme and host, no default port, no fragment, no tracking parameters (utm_*, fbclid, gclid...),
the remaining query sorted, no trailing slash (except the root). http and https stay distinct: a site may
serve different things on each, and the feed's own scheme is what readers follow.
"""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TRACKING = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "mc_cid", "mc_eid", "igshid", "_hsenc",
    "_hsmi", "mkt_tok", "ref_src", "spm", "si", "twclid", "li_fat_id", "oly_enc_id", "oly_anon_id", "vero_id",
})  # fmt: skip


def canonical_url(url: str) -> str:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING
    )  # fmt: skip
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return urlunsplit((scheme, host, path, urlencode(query), ""))
