"""Console sign-in throttling: growing delays per (client address, username), never a lock.

A hard lock after N failures let anyone lock any admin out (the right password was refused
too), and unknown names never locked, which told names apart. Here the key is the pair: a
guesser at one address slows down only its own attempts at that name, the admin signing in
from elsewhere is not affected, and an unknown name is throttled exactly like a known one.

After ``free`` failures in a row, each further failure makes the pair wait ``base`` seconds,
doubling up to ``cap``. A success clears the pair. The state is in memory, per process: a
restart forgets it, which costs an attacker nothing they could not get by waiting ``cap``.
The clock is injectable, so tests move time instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5
BASE_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 300.0
FORGET_AFTER_SECONDS = 3600.0  # a pair idle this long starts afresh
MAX_PAIRS = 10_000  # bounded memory: the oldest pairs are forgotten first


@dataclass
class _Pair:
    failures: int = 0
    blocked_until: float = 0.0
    last_seen: float = 0.0
    in_flight: int = 0


# Every throttle of this process, so that an admin's unlock reaches them (forget_everywhere).
_THROTTLES: weakref.WeakSet[LoginThrottle] = weakref.WeakSet()


def forget_everywhere(username: str) -> None:
    """Clear the failures of ``username`` from every address, in every throttle of this
    process (a super admin unlocked it). Other processes keep theirs until they expire."""
    for throttle in list(_THROTTLES):
        throttle.forget(username)


class LoginThrottle:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        free: int = FREE_FAILURES,
        base: float = BASE_DELAY_SECONDS,
        cap: float = MAX_DELAY_SECONDS,
    ) -> None:
        self.clock = clock
        self.free, self.base, self.cap = free, base, cap
        self._pairs: OrderedDict[tuple[str, str], _Pair] = OrderedDict()
        self._lock = threading.Lock()
        _THROTTLES.add(self)

    def forget(self, username: str) -> None:
        name = username.strip().lower()
        with self._lock:
            for key in [key for key in self._pairs if key[1] == name]:
                del self._pairs[key]

    def admit(self, address: str, username: str) -> float:
        """0 if an attempt may be checked now (then report it with :meth:`done`), else the
        seconds to wait. Past the free failures only one attempt per pair is checked at a
        time, so parallel guesses cannot all slip in before the first failure counts."""
        key = (address, username.strip().lower())
        with self._lock:
            now = self.clock()
            pair = self._pair(key, now)
            if pair.blocked_until > now:
                return pair.blocked_until - now
            if pair.failures + pair.in_flight >= self.free and pair.in_flight:
                return self.base
            pair.in_flight += 1
            return 0.0

    def done(self, address: str, username: str, *, ok: bool) -> float:
        """Record an admitted attempt's result; the delay it set (0 for none)."""
        key = (address, username.strip().lower())
        with self._lock:
            now = self.clock()
            pair = self._pair(key, now)
            pair.in_flight = max(0, pair.in_flight - 1)
            if ok:
                pair.failures, pair.blocked_until = 0, 0.0
                return 0.0
            pair.failures += 1
            delay = self.delay_after(pair.failures)
            pair.blocked_until = now + delay
            return delay

    def delay_after(self, failures: int) -> float:
        """1 s after the fifth failure, 2 s after the sixth, 4 s ... at most ``cap``."""
        if failures < self.free:
            return 0.0
        exponent = min(failures - self.free, 64)  # 2**64 s is past any cap
        return min(self.cap, self.base * math.pow(2, exponent))

    def _pair(self, key: tuple[str, str], now: float) -> _Pair:
        pair = self._pairs.get(key)
        if pair is None or (
            not pair.in_flight
            and now - pair.last_seen > FORGET_AFTER_SECONDS
            and pair.blocked_until <= now
        ):
            pair = _Pair()
            self._pairs[key] = pair
        pair.last_seen = now
        self._pairs.move_to_end(key)
        while len(self._pairs) > MAX_PAIRS:
            self._pairs.popitem(last=False)
        return pair
