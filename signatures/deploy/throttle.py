"""Pacing shared by every provider: a token bucket for the steady write rate, and a retry policy with
exponential backoff and full jitter that always honours a provider's Retry-After."""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from signatures.deploy.targets.base import TransientError

T = TypeVar("T")


class TokenBucket:
    """Thread-safe pacing at `rate` per second with a small burst; `pause()` holds everyone back after a
    provider said Retry-After, so the other threads do not keep hitting a throttled API."""

    def __init__(self, rate: float | None, burst: float | None = None, clock=time.monotonic, sleep=time.sleep):
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, (rate or 1) / 20)
        self.tokens = self.capacity
        self.clock, self.sleep = clock, sleep
        self.updated = clock()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def acquire(self) -> None:
        if self.rate is None:
            self._wait_pause()
            return
        while True:
            with self.lock:
                now = self.clock()
                if now < self.paused_until:
                    wait = self.paused_until - now
                else:
                    self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                    self.updated = now
                    if self.tokens >= 1:
                        self.tokens -= 1
                        return
                    wait = (1 - self.tokens) / self.rate
            self.sleep(wait)

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)
            self.tokens = 0

    def _wait_pause(self) -> None:
        while (wait := self.paused_until - self.clock()) > 0:
            self.sleep(wait)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After wins (plus a little jitter so threads do not return in lockstep); otherwise
        min(max_delay, base * 2**attempt) with full jitter."""
        if retry_after is not None:
            return retry_after + random.uniform(0, min(1.0, retry_after * 0.1 + 0.05))
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class GaveUp(Exception):
    def __init__(self, attempts: int, last: TransientError):
        super().__init__(f"gave up after {attempts} attempts: {last.message}")
        self.last = last


def call_with_retry(
    fn: Callable[[], T], *, policy: RetryPolicy, bucket: TokenBucket | None = None,
    on_retry: Callable[[int, TransientError, float], None] | None = None, sleep=time.sleep,
) -> T:  # fmt: skip
    for attempt in range(policy.max_attempts):
        try:
            return fn()
        except TransientError as exc:
            if attempt + 1 >= policy.max_attempts:
                raise GaveUp(attempt + 1, exc) from exc
            wait = policy.delay(attempt, exc.retry_after)
            if bucket is not None and exc.retry_after is not None and getattr(exc, "pause_all", True):
                bucket.pause(wait)
            if on_retry:
                on_retry(attempt + 1, exc, wait)
            sleep(wait)
    raise AssertionError("unreachable")
