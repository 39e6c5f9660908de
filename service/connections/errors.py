"""What a provider call can fail with, for every caller (deployment targets, directory sources, connection
tests): the caller's retry policy (service.connections.throttle) decides what to do with each kind."""


class TargetError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TransientError(TargetError):
    """Retry later: throttling (429, rate-limit 403), 5xx, timeouts, dropped connections."""

    def __init__(self, message: str, retry_after: float | None = None, *, pause_all: bool = True,
                 throttled: bool = False, code: str = "", service: str = ""):  # fmt: skip
        super().__init__(message)
        self.retry_after = retry_after
        # True for throttling (429, rate-limit 403): the adaptive limit slows down; 5xx and network errors don't.
        self.throttled = throttled
        self.code, self.service = code, service  # e.g. "userRateLimitExceeded", "Gmail": for the deferral's reason
        # False for a per-mailbox limit (Gmail's userRateLimitExceeded): wait for this mailbox only,
        # without pausing every other mailbox's writes.
        self.pause_all = pause_all


class SkipMailbox(TargetError):
    """Retrying cannot help for this mailbox (no mail service, unknown user, signature too long)."""


class ConfigurationError(TargetError):
    """Retrying cannot help for any mailbox (delegation missing, permissions, roaming signatures on)."""
