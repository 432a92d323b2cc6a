"""The run's tasks: every background task of one run, in one task group that the run owns.

The lease's renewal and its watch, the uploaders and the progress ticker are started
with :meth:`RunTasks.create_task` and live in one ``asyncio.TaskGroup``: none outlives
the run, and leaving the block cancels the ones still running and waits for them.

A task that fails (any exception but a cancellation) does not cancel the run's body,
as a bare ``TaskGroup`` would, mid-way through landing what it fetched: it asks the run
to stop with a fatal error that names it (:meth:`StopRequest.fail
<tmdb_ingest.run.stopping.StopRequest.fail>`; an unexpected exception becomes an
:class:`~tmdb_ingest.errors.InternalError`). The run then stops promptly, lands what it
can, saves its state and raises that error with its summary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Protocol

from tmdb_ingest.errors import FatalError, InternalError
from tmdb_ingest.run.stopping import StopRequest

__all__ = ["RunTasks", "TaskStarter"]

log = logging.getLogger("tmdb_ingest")


class TaskStarter(Protocol):
    """What starts a background task in a group: an ``asyncio.TaskGroup`` or :class:`RunTasks`."""

    def create_task(
        self, coro: Coroutine[Any, Any, None], *, name: str | None = None
    ) -> asyncio.Task[None]: ...


class RunTasks:
    """The run's task group. Use ``async with RunTasks(stop) as tasks``."""

    def __init__(self, stop: StopRequest) -> None:
        self.stop = stop
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> RunTasks:
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        # The tasks never raise (see _supervised), so the group has nothing to report; an
        # exception of the body goes on as itself, not wrapped in an ExceptionGroup.
        await self._group.__aexit__(None, None, None)

    def create_task(
        self, coro: Coroutine[Any, Any, None], *, name: str | None = None
    ) -> asyncio.Task[None]:
        """Start ``coro`` in the run's group; if it fails, the run stops on a fatal error."""
        task = self._group.create_task(self._supervised(coro, name or "a task"), name=name)
        # cancelled before it started, ``coro`` was never awaited: close it, quietly
        task.add_done_callback(lambda _: coro.close())
        self._tasks.append(task)
        return task

    async def _supervised(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await coro
        except FatalError as exc:
            self.stop.fail(exc)
        except Exception as exc:
            log.debug("%s failed", name, exc_info=True)
            self.stop.fail(InternalError(f"{name} failed: {type(exc).__name__}: {exc}"))
