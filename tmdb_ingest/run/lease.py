"""One writer per run and shard: a lease held in the sink with conditional writes.

The lease is one small JSON object (at ``RunLayout.lease_key``, see
:mod:`tmdb_ingest.run.layout`) naming its holder, a random token, an ``epoch`` that grows
with each takeover, and when it ``expires`` (wall clock, ISO UTC). It is:

- acquired with ``If-None-Match: *`` (only one of two invocations started together can
  create it);
- renewed every ``ttl / 3`` with ``If-Match: <etag>`` by a task in the run's task group;
- released on every way out with a conditional delete (``If-Match``);
- taken over, with ``If-Match`` on the ETag that was read, once its expiry has passed by
  more than ``skew`` seconds on the reader's wall clock (the holder died: SIGKILL,
  Lambda timeout). One log line says so.

A second invocation that finds a live lease polls it: if it is renewed the holder is
alive and the second one raises :class:`RunBusy` (within about ``ttl / 2``); if it
expires instead, the second one takes it over (waiting at most ``ttl + skew``, saying so
in one log line).

Fencing: the holder counts its lease valid until ``valid_until`` = the time the last
renewal that landed was *sent* + ``ttl``, on the event loop's clock. A renewal that
cannot land by then (S3 down, the lease taken over) loses the lease: ``lost`` is set,
writes in flight through :class:`~tmdb_ingest.run.fencing.FencedSink` are cancelled,
and every later write raises :class:`LeaseLost`. Because another invocation takes over
only after ``expires + skew`` on its own wall clock, and ``expires`` was the holder's
wall clock at sending + ``ttl``, the two never write at the same time as long as the two
wall clocks differ by less than ``skew`` minus the time a cancelled write can still take
to land. See docs/lease.md.

Every duration is read from injectable clocks (``clock`` and ``sleep`` for the loop's
monotonic time, ``wall_clock`` for expiry), so tests run on a patched clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from tmdb_ingest.config.options import default
from tmdb_ingest.errors import LeaseLost, PreconditionFailed, RunBusy, SinkError
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.run.fencing import FencedSink
from tmdb_ingest.run.lease_record import LeaseRecord, iso
from tmdb_ingest.run.stopping import StopRequest
from tmdb_ingest.run.tasks import RunTasks

if TYPE_CHECKING:
    from tmdb_ingest.config.settings import Shard
    from tmdb_ingest.run.tasks import TaskStarter

__all__ = ["DEFAULT_SKEW", "FencedSink", "Lease", "LeaseRecord"]

log = logging.getLogger("tmdb_ingest.run.lease")

DEFAULT_SKEW: float = default("lease_skew")
"""Seconds an expired lease is still respected: covers wall clocks that disagree (NTP keeps
EC2 and Lambda within milliseconds) and a write cancelled at ``valid_until`` that lands
late. Raise it where clocks are not synchronised."""

T = TypeVar("T")


def _default_holder() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Lease:
    """The lease of one run and shard, held by this invocation. Use :meth:`hold`.

    ``lost`` is set once the lease is gone (not renewed by ``valid_until``, or taken over);
    from then on :meth:`check` and every :class:`FencedSink` write raise LeaseLost.
    """

    def __init__(
        self,
        sink: Sink,
        key: str,
        *,
        ttl: float,
        run_id: str,
        shard: Shard | str,
        holder: str | None = None,
        skew: float = DEFAULT_SKEW,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        wall_clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl}")
        if skew < 0:
            raise ValueError(f"skew must be 0 or more, got {skew}")
        self.sink = sink
        self.key = key
        self.ttl = ttl
        self.skew = skew
        self.run_id = run_id
        self.shard = str(shard)
        self.holder = holder or _default_holder()
        self.token = secrets.token_hex(8)
        self.lost = asyncio.Event()
        self.valid_until = float("-inf")
        """Loop-clock time after which this holder writes nothing (sent + ttl)."""
        self.clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep or asyncio.sleep
        self._wall = wall_clock or _now_utc
        self._record: LeaseRecord | None = None
        self._etag: str | None = None
        self._sent: dict[int, float] = {}  # renewal number -> loop time it was sent
        self._renewer: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._lost_reason = ""

    # -- the public face ---------------------------------------------------------------

    @asynccontextmanager
    async def hold(self, tasks: TaskStarter | None = None) -> AsyncIterator[Lease]:
        """Acquire the lease (or raise RunBusy), keep it renewed, release it on the way out.

        Waits at most about ``ttl + skew`` for a dead holder's lease to expire. The renewal
        runs in ``tasks`` (the run's task group; default: a group of its own). If it fails
        unexpectedly, renewals stop but the holder stays fenced: the lease counts until
        ``valid_until``, time enough for the run to stop and save its state.
        """
        await self.acquire()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if tasks is None:
                    tasks = await stack.enter_async_context(RunTasks(self._own_stop()))
                self._renewer = tasks.create_task(self._renew_forever(), name="the lease renewal")
                yield self
        finally:
            await self.release()

    def _own_stop(self) -> StopRequest:
        """For a lease held outside a run: a renewal that fails loses the lease at once."""
        stop = StopRequest()
        stop.subscribe(
            lambda s: self._lose(f"its renewal stopped: {s.reason}") if s.error else None
        )
        return stop

    @property
    def epoch(self) -> int:
        return self._record.epoch if self._record else 0

    @property
    def expires(self) -> str | None:
        """When the stored lease expires (ISO UTC), or None before it is acquired."""
        return self._record.expires if self._record else None

    def remaining(self) -> float:
        """Seconds (loop clock) until ``valid_until``; 0 or less once it has passed."""
        return self.valid_until - self.clock()

    def check(self) -> None:
        """Raise LeaseLost unless the lease is held and ``valid_until`` is still ahead."""
        if not self.lost.is_set() and self.remaining() <= 0:
            self._lose("it was not renewed in time")
        if self.lost.is_set():
            raise self._lost_error()

    def _lost_error(self) -> LeaseLost:
        return LeaseLost(
            f"lost the lease of run {self.run_id} shard {self.shard}: {self._lost_reason}"
        )

    # -- acquiring ---------------------------------------------------------------------

    async def acquire(self) -> None:
        """Create the lease, or take over an expired one; raise RunBusy if it is alive."""
        while True:
            sent, wall = self.clock(), self._wall()
            record = LeaseRecord(
                run_id=self.run_id,
                shard=self.shard,
                holder=self.holder,
                token=self.token,
                epoch=1,
                renewal=0,
                started=iso(wall),
                expires=iso(wall + dt.timedelta(seconds=self.ttl)),
            )
            try:
                etag = await self.sink.put(self.key, record.to_json(), if_none_match=True)
            except PreconditionFailed:
                pass
            else:
                self._start(record, etag, sent)
                return
            found = await self._read()
            if found is None:
                continue  # released between our PUT and our read: try again
            current, etag = found
            if not self._expired(current):
                found = await self._watch(current, etag)
                if found is None:
                    continue
                current, etag = found
            if await self._take_over(current, etag):
                return

    async def _read(self) -> tuple[LeaseRecord, str] | None:
        found = await self.sink.get_with_etag(self.key)
        if found is None:
            return None
        body, etag = found
        record = LeaseRecord.parse(body)
        if record is None:
            raise SinkError(
                f"the lease {self.sink.uri(self.key)} is damaged; delete it if no invocation"
                " of this run and shard is running"
            )
        return record, etag

    def _expired(self, record: LeaseRecord) -> bool:
        return self._wall() >= record.expires_at() + dt.timedelta(seconds=self.skew)

    def _seconds_to_expiry(self, record: LeaseRecord) -> float:
        deadline = record.expires_at() + dt.timedelta(seconds=self.skew)
        return (deadline - self._wall()).total_seconds()

    async def _watch(self, record: LeaseRecord, etag: str) -> tuple[LeaseRecord, str] | None:
        """Poll a live lease until it is renewed (RunBusy), released (None) or expired."""
        log.info(
            "run %s shard %s is held by %s until %s; waiting up to %.0f s for it to be"
            " renewed (then this invocation is busy) or to expire (then it takes over)",
            self.run_id,
            self.shard,
            record.holder,
            record.expires,
            max(0.0, self._seconds_to_expiry(record)),
        )
        poll = self.ttl / 6  # the holder renews every ttl/3: two looks per renewal
        while True:
            # never 0: a clock that has not moved must not spin this loop
            await self._sleep(max(poll / 100, min(poll, self._seconds_to_expiry(record))))
            found = await self._read()
            if found is None:
                return None
            now_record, now_etag = found
            if now_etag != etag:
                if self._expired(now_record):
                    return found  # replaced by a lease that is already stale
                raise RunBusy(
                    f"run {self.run_id} shard {self.shard} is held by"
                    f" {now_record.holder} until {now_record.expires}",
                    holder=now_record.holder,
                    until=now_record.expires,
                )
            if self._expired(now_record):
                return found

    async def _take_over(self, stale: LeaseRecord, etag: str) -> bool:
        sent, wall = self.clock(), self._wall()
        record = LeaseRecord(
            run_id=self.run_id,
            shard=self.shard,
            holder=self.holder,
            token=self.token,
            epoch=stale.epoch + 1,
            renewal=0,
            started=iso(wall),
            expires=iso(wall + dt.timedelta(seconds=self.ttl)),
        )
        try:
            new_etag = await self.sink.put(self.key, record.to_json(), if_match=etag)
        except PreconditionFailed:
            return False  # another invocation moved first: look again
        log.warning(
            "took over the lease of run %s shard %s from %s, which expired at %s (epoch %d)",
            self.run_id,
            self.shard,
            stale.holder,
            stale.expires,
            record.epoch,
        )
        self._start(record, new_etag, sent)
        return True

    def _start(self, record: LeaseRecord, etag: str, sent: float) -> None:
        self._record, self._etag = record, etag
        self.valid_until = sent + self.ttl

    # -- renewing ----------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        interval = self.ttl / 3
        retry = self.ttl / 30  # after a failed renewal: ~9 more tries before valid_until
        next_at = self.valid_until - self.ttl + interval
        # Any other exception ends the renewals and goes to the task group: the holder
        # stays fenced by valid_until, which only a renewal that landed moves on.
        while True:
            wake = min(next_at, self.valid_until)
            await self._sleep(max(0.0, wake - self.clock()))
            if self.remaining() <= 0:
                self._lose(f"it could not be renewed by {self.expires}")
                return
            try:
                await self._renew_once()
            except PreconditionFailed:
                self._lose("another invocation took it over")
                return
            except (SinkError, TimeoutError) as exc:
                log.warning(
                    "renewing the lease of run %s shard %s failed (%s); trying again",
                    self.run_id,
                    self.shard,
                    exc or type(exc).__name__,
                )
                next_at = self.clock() + retry
            else:
                next_at = self.valid_until - self.ttl + interval

    async def _renew_once(self) -> None:
        assert self._record is not None
        assert self._etag is not None
        sent, wall = self.clock(), self._wall()
        number = max(self._sent, default=self._record.renewal) + 1
        record = replace(
            self._record, renewal=number, expires=iso(wall + dt.timedelta(seconds=self.ttl))
        )
        self._sent[number] = sent
        async with asyncio.timeout(max(0.0, self.valid_until - sent)):
            try:
                etag = await self.sink.put(self.key, record.to_json(), if_match=self._etag)
            except PreconditionFailed:
                # Ambiguous after an earlier attempt that failed: it may have landed (the
                # answer was lost), moving the ETag on. Ours if token, epoch and a renewal
                # number we sent match; then that attempt's send time counts.
                found = await self._read()
                if found is None:
                    raise
                current, etag = found
                if not (current.is_same_holding(record) and current.renewal in self._sent):
                    raise
                record, sent = current, self._sent[current.renewal]
        self._record, self._etag = record, etag
        self.valid_until = max(self.valid_until, sent + self.ttl)
        self._sent = {n: t for n, t in self._sent.items() if n > record.renewal}

    def _lose(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self._lost_reason = reason
        self.lost.set()
        for task in self._inflight:
            task.cancel()
        log.error(
            "lost the lease of run %s shard %s: %s; writing nothing more",
            self.run_id,
            self.shard,
            reason,
        )

    # -- releasing ---------------------------------------------------------------------

    async def release(self) -> None:
        """Stop renewing and delete the lease if it is still ours. Never raises SinkError."""
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        if self._etag is None or self._record is None:
            return
        etag, self._etag = self._etag, None
        try:
            async with asyncio.timeout(self.ttl / 3):
                try:
                    await self.sink.delete(self.key, if_match=etag)
                except PreconditionFailed:
                    # A renewal whose answer was lost may have landed: then it is still ours.
                    found = await self._read()
                    if found is not None and found[0].is_same_holding(self._record):
                        await self.sink.delete(self.key, if_match=found[1])
                    else:
                        log.info(
                            "the lease of run %s shard %s is no longer ours; nothing to release",
                            self.run_id,
                            self.shard,
                        )
        except (SinkError, TimeoutError) as exc:
            log.warning(
                "could not release the lease of run %s shard %s (%s); the next invocation"
                " waits until it expires at %s",
                self.run_id,
                self.shard,
                exc or type(exc).__name__,
                self._record.expires,
            )

    # -- fencing -----------------------------------------------------------------------

    async def fenced(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` only while the lease is held, cut off at ``valid_until``.

        Raise LeaseLost if the lease is already lost, or is lost while the write is in
        flight (the write is cancelled then).
        """
        self.check()
        task = asyncio.ensure_future(make())
        self._inflight.add(task)
        deadline = asyncio.timeout(self.remaining())
        try:
            async with deadline:
                return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not self.lost.is_set() or (current is not None and current.cancelling() > 0):
                raise  # our caller is being cancelled, not the write by the lease
        except TimeoutError:
            if not deadline.expired():
                raise  # the sink's own timeout
            self._lose(f"a write was still in flight at valid_until ({self.expires})")
        finally:
            self._inflight.discard(task)
            if not task.done():
                task.cancel()
        raise self._lost_error()
