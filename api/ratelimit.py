"""Per-client rate limits: a token bucket per API key (per client address for requests without an
accepted key), answered with 429 and ``Retry-After`` (whole seconds) when empty.

* ``KGFORGE_RATE_LIMIT_PER_S`` (default 50): tokens added per second; ``0`` turns limiting off.
* ``KGFORGE_RATE_LIMIT_BURST`` (default 100): the bucket's size, i.e. how many requests a client may
  make at once after a quiet spell.

Every route behind the key check (``api/deps.py``: every ``/v1`` route, ``/metrics`` and the docs)
takes one token per request; ``/healthz`` and ``/readyz`` take none. The bucket of a request is its
accepted key's (a digest of it: keys are never kept in memory here in the clear), else its client
address: a wrong key spends the address's tokens, so guessing keys is rate limited too, and inventing
keys does not mint fresh buckets. Request-size limits are separate (``api/limits.py``).

The buckets live in each API process's memory (no broker round trip on the read path, and no
failure mode when the broker is down). With ``KGFORGE_API_WORKERS=N`` processes each holds its own
buckets; a client whose connections land on several processes may get up to N times the rate. The
limit is a guard against one client starving the others, not an exact quota. At most
``MAX_BUCKETS`` buckets are kept (least recently used dropped first; a dropped bucket comes back
full).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_BUCKETS = 50_000


class RateLimiter:
    """Token buckets by client identity; :meth:`take` spends one token or says how long to wait.

    Thread-safe: sync routes' dependencies run in the threadpool.
    """

    def __init__(self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = MAX_BUCKETS):
        if rate_per_s < 0 or burst < 1:
            raise ValueError("rate_per_s must be >= 0 and burst >= 1")
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # who -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, who: str) -> float:
        """Spend one of ``who``'s tokens: 0.0 when allowed, else the seconds until a token is back."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                wait, tokens = 0.0, tokens - 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[who] = (tokens, now)  # most recently used last
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        return wait


def retry_after(wait_s: float) -> str:
    """``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))


__all__ = ["MAX_BUCKETS", "RateLimiter", "retry_after"]
