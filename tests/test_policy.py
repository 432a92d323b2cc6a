"""The retry loop of one id (fetch.policy.Tries): how many attempts, when it gives up,
and when the deadline makes an id unresolved."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import pytest

from tmdb_ingest.fetch.outcomes import FetchResult, Final, Outcome, Retryable
from tmdb_ingest.fetch.policy import ClientPolicy, Tries

NO_WAIT = ClientPolicy(max_attempts=4, backoff_initial=0.0, backoff_max=0.0)


def answers(*script: Exception | None) -> tuple[Callable[[], Awaitable[FetchResult]], list[int]]:
    """An attempt that raises the scripted exceptions in turn (None: fetched)."""
    calls: list[int] = []

    async def attempt() -> FetchResult:
        calls.append(1)
        step = script[min(len(calls), len(script)) - 1]
        if step is not None:
            raise step
        return FetchResult("tt0000001", Outcome.FETCHED, body=b"{}")

    return attempt, calls


async def test_errors_are_tried_max_attempts_times_then_failed() -> None:
    """Four 503s with max_attempts=4: four attempts, failed with the last reason."""
    attempt, calls = answers(Retryable("HTTP 503"))
    tries = Tries(NO_WAIT, rng=random.Random(0))
    result = await tries.run("tt0000001", attempt)
    assert (result.outcome, result.reason, result.attempts) == (Outcome.FAILED, "HTTP 503", 4)
    assert len(calls) == 4


async def test_a_success_after_errors_counts_every_attempt() -> None:
    """503, timeout, then 200: fetched after three attempts."""
    attempt, calls = answers(Retryable("HTTP 503"), Retryable("timeout"), None)
    result = await Tries(NO_WAIT, rng=random.Random(0)).run("tt0000001", attempt)
    assert (result.outcome, result.attempts, len(calls)) == (Outcome.FETCHED, 3, 3)


async def test_throttles_do_not_use_up_the_error_attempts() -> None:
    """Five 429s then a 200, with max_attempts=4: 429s count against max_throttled only."""
    attempt, _ = answers(*[Retryable("HTTP 429", throttled=True)] * 5, None)
    result = await Tries(NO_WAIT, rng=random.Random(0)).run("tt0000001", attempt)
    assert (result.outcome, result.attempts) == (Outcome.FETCHED, 6)
    policy = ClientPolicy(max_attempts=4, max_throttled=3, backoff_initial=0.0, backoff_max=0.0)
    attempt, _ = answers(Retryable("HTTP 429", throttled=True))
    result = await Tries(policy, rng=random.Random(0)).run("tt0000001", attempt)
    assert (result.outcome, result.attempts) == (Outcome.FAILED, 3)


async def test_a_final_answer_is_not_retried() -> None:
    """A 403 is failed at once, after one attempt."""
    attempt, calls = answers(Final("HTTP 403"))
    result = await Tries(NO_WAIT, rng=random.Random(0)).run("tt0000001", attempt)
    assert (result.outcome, result.reason, len(calls)) == (Outcome.FAILED, "HTTP 403", 1)


async def test_the_retry_wait_budget_ends_the_tries() -> None:
    """Backoff of 1..2 s a try and 2.5 s of retry wait in all: at most two waits, then failed."""
    policy = ClientPolicy(max_attempts=10, max_retry_wait=2.5, backoff_initial=2.0, backoff_max=2.0)
    attempt, calls = answers(Retryable("HTTP 500"))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("tmdb_ingest.fetch.policy.asyncio.sleep", sleep)
        result = await Tries(policy, rng=random.Random(0)).run("tt0000001", attempt)
    assert result.outcome is Outcome.FAILED
    assert sum(slept) <= 2.5
    assert len(calls) == len(slept) + 1 == 2


async def test_a_wait_past_the_deadline_leaves_the_id_unresolved() -> None:
    """No retry wait that would end past retry_until is begun: the id is unresolved."""
    policy = ClientPolicy(max_attempts=10, backoff_initial=5.0, backoff_max=5.0)
    attempt, calls = answers(Retryable("HTTP 502"))
    tries = Tries(policy, rng=random.Random(0), retry_until=102.0, clock=lambda: 100.0)
    result = await tries.run("tt0000001", attempt)
    assert (result.outcome, result.reason, result.attempts) == (Outcome.UNRESOLVED, None, 1)
    assert len(calls) == 1
