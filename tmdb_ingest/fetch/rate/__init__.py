"""Rate control: the :class:`Limiter` protocol, the shared :class:`Pacer`, a fixed rate
(:class:`RateLimiter`) and ``--rate auto`` (:class:`AdaptiveLimiter`).

``pacer`` is imported by both limiters and imports neither; ``limiter`` builds either.
"""

from tmdb_ingest.fetch.rate.adaptive import AdaptiveLimiter
from tmdb_ingest.fetch.rate.fixed import RateLimiter
from tmdb_ingest.fetch.rate.limiter import Limiter, StatesLimit, make_limiter
from tmdb_ingest.fetch.rate.pacer import Clock, Pacer, Sleep

__all__ = [
    "AdaptiveLimiter",
    "Clock",
    "Limiter",
    "Pacer",
    "RateLimiter",
    "Sleep",
    "StatesLimit",
    "make_limiter",
]
