"""uvicorn's HTTP/1.1 protocol with the limits uvicorn lacks: header and body read timeouts and a
connection cap, so slow or idle clients cannot hold the server's sockets and file descriptors.

- A connection waiting for request headers longer than `header_timeout_s` (a slow-header client,
  or an idle one) is closed; so is one still sending its body after `body_timeout_s`.
- Past `max_connections` open connections a new one is closed at once, before it is read, and
  the open-file limit is raised to its hard maximum at start so the cap is reached first.
- Such floods are logged once a minute, not once per connection.

For the internet, put a proxy in front as well (README: nginx settings).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# Its own logger, rate-limited like asyncio's: a flood is one line a minute, not one per socket.
log = logging.getLogger("huying.serving.connections")
_CHECK_EVERY_S = 0.5
_FLOOD_LOG_INTERVAL_S = 60.0


class _OncePerInterval(logging.Filter):
    """Passes the first record of each kind per interval; counts the ones it drops."""

    def __init__(self, interval_s: float = _FLOOD_LOG_INTERVAL_S):
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)[:80]
        now = time.monotonic()
        if now - self._last.get(key, -self.interval_s) < self.interval_s:
            self.dropped += 1
            return False
        self._last[key] = now
        return True


_flood_filter = _OncePerInterval()


def guarded_protocol(*, header_timeout_s: float, body_timeout_s: float,
                     max_connections: int) -> type[H11Protocol]:
    """An H11Protocol class with these limits, for `uvicorn.run(..., http=...)`."""

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= max_connections:
                self.transport = transport  # uvicorn's connection_lost closes it
                log.warning("%d connections open (HUYING_MAX_CONNECTIONS): refusing new ones",
                            len(self.connections))
                transport.abort()
                return
            super().connection_made(transport)
            self._phase = self.conn.their_state
            self._phase_started = time.monotonic()
            self._watch: asyncio.TimerHandle | None = self.loop.call_later(_CHECK_EVERY_S,
                                                                           self._check)

        def _check(self) -> None:
            self._watch = None
            if self.transport.is_closing():
                return
            state, now = self.conn.their_state, time.monotonic()
            if state is not self._phase:
                self._phase, self._phase_started = state, now
            waiting_for_headers = state is h11.IDLE and (self.cycle is None
                                                         or self.cycle.response_complete)
            limit = header_timeout_s if waiting_for_headers else (
                body_timeout_s if state is h11.SEND_BODY else None)
            if limit is not None and now - self._phase_started > limit:
                log.warning("closing connections that sent no complete request within %g s "
                            "(HUYING_HEADER_TIMEOUT_S / HUYING_BODY_TIMEOUT_S)", limit)
                self.transport.close()
                return
            self._watch = self.loop.call_later(_CHECK_EVERY_S, self._check)

        def connection_lost(self, exc: Exception | None) -> None:
            watch = getattr(self, "_watch", None)
            if watch is not None:
                watch.cancel()
            super().connection_lost(exc)

    return GuardedH11Protocol


def prepare_process() -> dict[str, Any]:
    """Raise the open-file limit to its maximum and rate-limit flood logs; returns the limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    for name in ("asyncio", log.name):  # asyncio logs each failed accept() (EMFILE)
        logger = logging.getLogger(name)
        if _flood_filter not in logger.filters:
            logger.addFilter(_flood_filter)
    return {"open_files": soft}
