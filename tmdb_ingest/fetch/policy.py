"""How one id is tried: timeouts and retries (:class:`ClientPolicy`), and the loop that
applies them (:class:`Tries`).

Errors (5xx, timeouts, resets, bad bodies, foreign 404s) are tried at most
``max_attempts`` times with exponential backoff and "equal jitter", and at most
``max_retry_wait`` seconds of backoff in all. 429s are not the movie's fault: they count
against ``max_throttled`` instead, and the limiter does the waiting (a retry after a 429
waits only a jitter of up to 0.2 s). No wait that would end past the deadline is begun:
the id then comes back ``unresolved``, neither fetched nor failed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tmdb_ingest.config.options import default
from tmdb_ingest.fetch.outcomes import FetchResult, Final, Outcome, Retryable

if TYPE_CHECKING:
    from tmdb_ingest.config.settings import Settings

__all__ = ["ClientPolicy", "Tries"]


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """Timeouts and retries: a value object, like httpx's ``Timeout`` and ``Limits``.

    The defaults are the settings' (:data:`~tmdb_ingest.config.options.OPTIONS`).
    """

    connect_timeout: float = default("connect_timeout")
    request_timeout: float = default("request_timeout")
    max_attempts: int = default("max_attempts")
    max_retry_wait: float = default("max_retry_wait")
    backoff_initial: float = default("backoff_initial")
    backoff_max: float = default("backoff_max")
    max_throttled: int = 30  # not a setting: 429s are the limiter's to wait out

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientPolicy:
        return cls(
            connect_timeout=settings.connect_timeout,
            request_timeout=settings.request_timeout,
            max_attempts=settings.max_attempts,
            max_retry_wait=settings.max_retry_wait,
            backoff_initial=settings.backoff_initial,
            backoff_max=settings.backoff_max,
        )

    @property
    def attempt_timeout(self) -> float:
        """The longest one attempt may take, once it has its connection slot."""
        return self.connect_timeout + self.request_timeout

    def backoff(self, errors: int, rng: random.Random) -> float:
        """The wait after the ``errors``-th error in a row: equal jitter, capped."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** max(0, errors - 1))
        return rng.uniform(ceiling / 2, ceiling)


class Tries:
    """The tries of one id under ``policy``; ``attempts`` counts them as they are made.

    ``retry_until`` is a deadline on ``clock`` (the event loop's by default). Cancel
    :meth:`run` to stop at once.
    """

    def __init__(
        self,
        policy: ClientPolicy,
        *,
        rng: random.Random,
        retry_until: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.policy = policy
        self.attempts = 0
        self._rng = rng
        self._retry_until = retry_until
        self._clock = clock or asyncio.get_running_loop().time

    async def run(self, imdb_id: str, attempt: Callable[[], Awaitable[FetchResult]]) -> FetchResult:
        """``attempt()`` until it gives a result, a final answer, or the tries run out."""
        policy = self.policy
        errors = throttles = 0
        waited = 0.0  # backoff after errors so far (not the jitter after 429s)
        while True:
            self.attempts += 1
            try:
                return replace(await attempt(), attempts=self.attempts)
            except Final as exc:
                return self._result(imdb_id, Outcome.FAILED, exc.reason)
            except Retryable as exc:
                if exc.throttled:
                    throttles += 1
                    pause = self._rng.uniform(0.0, 0.2)  # the limiter already holds everyone
                    out = throttles >= policy.max_throttled
                else:
                    errors += 1
                    pause = policy.backoff(errors, self._rng)
                    out = errors >= policy.max_attempts or waited + pause > policy.max_retry_wait
                    waited += pause
                if out:
                    return self._result(imdb_id, Outcome.FAILED, exc.reason)
            end = self._retry_until
            if end is not None and self._clock() + pause > end:
                return self._result(imdb_id, Outcome.UNRESOLVED)
            await asyncio.sleep(pause)

    def _result(self, imdb_id: str, outcome: Outcome, reason: str | None = None) -> FetchResult:
        return FetchResult(imdb_id, outcome, reason=reason, attempts=self.attempts)
