"""Pacing shared by every provider: a token bucket for the steady write rate, an adaptive limit on calls in
flight (AIMD), and a retry policy whose budget is time, not a count of attempts.

- Retry-After is always honoured. A wait longer than `defer_after` is not waited: the mailbox is *deferred*
  (`Deferred`) and the next scheduled run retries it, so one mailbox cannot hold a deployment for an hour.
- A mailbox may be retried for `budget_seconds`. Throttling that outlasts the budget defers the mailbox too
  (the provider is busy, not broken); other transient errors (5xx, network) that outlast it fail it (`GaveUp`).
- `AdaptiveLimit` halves the calls in flight when the provider throttles and adds one back after a run of
  successes, so a deployment converges on the rate the provider really allows instead of colliding on it.
"""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from service.connections.errors import TransientError

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


class AdaptiveLimit:
    """At most `limit` provider calls in flight, adapted AIMD-style: halved when the provider throttles, one
    more after `limit` successes in a row (never above `maximum`). A throttled call that started before the
    last decrease does not halve again: one burst of 429s is one congestion signal, not sixteen."""

    def __init__(self, maximum: int, minimum: int = 1):
        self.maximum, self.minimum = max(1, maximum), max(1, minimum)
        self.limit = self.maximum
        self.active = 0
        self.successes = 0
        self.epoch = 0  # bumped by each decrease
        self.decreases = 0
        self.lowest = self.limit
        self._cond = threading.Condition()

    def acquire(self) -> int:
        with self._cond:
            while self.active >= self.limit:
                self._cond.wait()
            self.active += 1
            return self.epoch

    def release(self, epoch: int, *, throttled: bool) -> None:
        with self._cond:
            self.active -= 1
            if throttled:
                if epoch == self.epoch:
                    self.limit = max(self.minimum, self.limit // 2)
                    self.lowest = min(self.lowest, self.limit)
                    self.epoch += 1
                    self.decreases += 1
                    self.successes = 0
            else:
                self.successes += 1
                if self.successes >= self.limit and self.limit < self.maximum:
                    self.limit += 1
                    self.successes = 0
            self._cond.notify_all()


@dataclass(frozen=True)
class RetryPolicy:
    budget_seconds: float = 300.0  # how long one mailbox may be retried
    defer_after: float = 300.0  # a Retry-After longer than this defers the mailbox to the next run
    base_delay: float = 0.5
    max_delay: float = 60.0
    max_attempts: int | None = None  # an extra cap on attempts (None: the time budget alone)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After wins (plus a little jitter so threads do not return in lockstep); otherwise
        min(max_delay, base * 2**attempt) with full jitter."""
        if retry_after is not None:
            return retry_after + random.uniform(0, min(1.0, retry_after * 0.1 + 0.05))
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class GaveUp(Exception):
    def __init__(self, attempts: int, last: TransientError, elapsed: float = 0.0):
        super().__init__(f"gave up after {attempts} attempts in {elapsed:.0f} s: {last.message}")
        self.last = last


class Deferred(Exception):
    """The provider asked for a longer wait than a deployment holds a mailbox: the next scheduled run retries."""

    def __init__(self, last: TransientError, *, wait: float | None, budget_spent: bool = False):
        self.last = last
        self.until = datetime.now(UTC) + timedelta(seconds=wait) if wait is not None else None
        service = last.service or "The provider"
        why = f" ({last.code})" if last.code else ""
        if budget_spent:
            message = f"{service} kept throttling for longer than the retry budget{why}"
        else:
            message = f"{service} asked to retry after {self.until:%H:%M} UTC{why}"
        super().__init__(message)
        self.message = message


def call_with_retry(
    fn: Callable[[], T], *, policy: RetryPolicy, bucket: TokenBucket | None = None,
    limit: AdaptiveLimit | None = None, on_retry: Callable[[int, TransientError, float], None] | None = None,
    sleep=time.sleep, clock=time.monotonic,
) -> T:  # fmt: skip
    started = clock()
    attempt = 0
    while True:
        epoch = limit.acquire() if limit is not None else 0
        throttled = False
        try:
            return fn()
        except TransientError as exc:
            # A per-mailbox limit (pause_all False: Gmail's userRateLimitExceeded) says nothing about the others.
            throttled = exc.throttled and exc.pause_all
            attempt += 1
            if exc.retry_after is not None and exc.retry_after > policy.defer_after:
                raise Deferred(exc, wait=exc.retry_after) from exc
            wait = policy.delay(attempt - 1, exc.retry_after)
            elapsed = clock() - started
            out_of_attempts = policy.max_attempts is not None and attempt >= policy.max_attempts
            if out_of_attempts or elapsed + wait > policy.budget_seconds:
                if exc.throttled and not out_of_attempts:
                    raise Deferred(exc, wait=exc.retry_after, budget_spent=True) from exc
                raise GaveUp(attempt, exc, elapsed) from exc
            if bucket is not None and exc.retry_after is not None and exc.pause_all:
                bucket.pause(wait)
            if on_retry:
                on_retry(attempt, exc, wait)
        finally:
            if limit is not None:
                limit.release(epoch, throttled=throttled)
        sleep(wait)
