"""Login throttling: sliding windows of failed attempts per account and per client IP.

In-process for now (each worker counts its own); a shared Redis window can replace it later
behind the same two methods.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from gateway.errors import RateLimited


class SlidingWindow:
    def __init__(self, *, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def _trim(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - self.window_s:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, key: str) -> float | None:
        """Seconds until another attempt is allowed, or None when allowed now."""
        now = self._clock()
        events = self._trim(key, now)
        if events is None or len(events) < self.limit:
            return None
        return max(events[0] + self.window_s - now, 0.0)

    def hit(self, key: str) -> None:
        now = self._clock()
        events = self._trim(key, now)
        if events is None:
            events = self._events[key] = deque()
        events.append(now)
        if len(self._events) > 100_000:  # bound memory under a spray of random keys
            for stale in list(self._events)[:10_000]:
                self._trim(stale, now)

    def reset(self, key: str) -> None:
        self._events.pop(key, None)


class LoginThrottle:
    def __init__(
        self,
        *,
        max_per_account: int,
        max_per_ip: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = SlidingWindow(limit=max_per_account, window_s=window_s, clock=clock)
        self.ips = SlidingWindow(limit=max_per_ip, window_s=window_s, clock=clock)

    def check(self, *, account: str, ip: str | None) -> None:
        waits = [self.accounts.retry_after(account)]
        if ip:
            waits.append(self.ips.retry_after(ip))
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                "Too many failed login attempts; try again later",
                code="login_throttled",
                headers={"Retry-After": str(seconds)},
            )

    def failure(self, *, account: str, ip: str | None) -> None:
        self.accounts.hit(account)
        if ip:
            self.ips.hit(ip)

    def success(self, *, account: str) -> None:
        self.accounts.reset(account)
