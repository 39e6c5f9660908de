"""Rate limits on failures only: guessing API keys, add-in tokens or link tokens is slowed; using them is not.

A pure ASGI middleware watches what each client address gets back. Failures fill that address's bucket:
a 401 to a request that presented credentials (/api/, /addin/: a wrong key or token, not a missing one), a
404 on a public token route (/c/, /s/, /i/, /u/, and the portal's sign-in links).
Once a bucket is full, that address's requests of the same kind get a 429 (the one error shape, with
Retry-After) until it drains. Successes cost nothing, so the burst of a mail scanner following every link of a
newsletter the moment it arrives is never refused, however large: only wrong tokens count.

Sizes: 20 failed authentications at once then 1 every 3 s per address (a person mistyping a key is far below
it; a key guesser gets ~30,000 tries a day, against 2^192 keys); 200 unknown link tokens at once then 2 a
second (links cut by a mail client, bots replaying old emails), the rest are scanners walking random paths.
The table of addresses is bounded (oldest first out), so it can't be grown without limit.
"""

import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    burst: float  # failures allowed at once
    per_second: float  # how fast the allowance comes back


AUTH = Limit(burst=20, per_second=1 / 3)
PUBLIC_TOKENS = Limit(burst=200, per_second=2)
MAX_ADDRESSES = 100_000
CREDENTIAL_PREFIXES = ("/api/", "/addin/")
TOKEN_PREFIXES = ("/c/", "/s/", "/i/", "/u/", "/sign-in/link/", "/sign-in/open/")


class _Buckets:
    """Failure level per address, leaking at the limit's rate."""

    def __init__(self, limit: Limit, clock=time.monotonic):
        self.limit, self.clock = limit, clock
        self.levels: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (level, at)

    def _level(self, address: str, now: float) -> float:
        level, at = self.levels.get(address, (0.0, now))
        return max(0.0, level - (now - at) * self.limit.per_second)

    def retry_after(self, address: str) -> int:
        """Seconds until this address may fail again; 0 when it may now."""
        if address not in self.levels:
            return 0
        over = self._level(address, self.clock()) + 1 - self.limit.burst
        return 0 if over <= 0 else max(1, math.ceil(over / self.limit.per_second))

    def fail(self, address: str) -> None:
        now = self.clock()
        self.levels[address] = (self._level(address, now) + 1, now)
        self.levels.move_to_end(address)
        while len(self.levels) > MAX_ADDRESSES:
            self.levels.popitem(last=False)


class RateLimits:
    def __init__(self, app, clock=time.monotonic):
        self.app = app
        self.auth = _Buckets(AUTH, clock)
        self.tokens = _Buckets(PUBLIC_TOKENS, clock)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(CREDENTIAL_PREFIXES):
            if not any(k in (b"authorization", b"x-api-key") for k, _ in scope.get("headers", ())):
                await self.app(scope, receive, send)  # nothing presented, nothing guessed
                return
            buckets, failure = self.auth, 401
        elif path.startswith(TOKEN_PREFIXES):
            buckets, failure = self.tokens, 404
        else:
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("?", 0))[0]
        wait = buckets.retry_after(address)
        if wait:
            await _too_many(send, wait)
            return

        async def watch(message):
            if message["type"] == "http.response.start" and message["status"] == failure:
                buckets.fail(address)
            await send(message)

        await self.app(scope, receive, watch)


async def _too_many(send, wait: int) -> None:
    body = json.dumps(
        {"error": {"code": "too_many_requests",
                   "message": f"Too many failed attempts from your address; try again in {wait} s."}}
    ).encode()  # fmt: skip
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"retry-after", str(wait).encode()), (b"cache-control", b"no-store")]  # fmt: skip
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
