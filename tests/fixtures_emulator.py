"""Pytest plugin: the TMDB emulator over real TCP, started and stopped by fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tmdb_ingest.emulator import Emulator, EmulatorConfig

EmulatorFactory = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A started emulator with the default config (keys ``test-api-key``/``test-access-token``)."""
    async with Emulator(EmulatorConfig()) as emu:
        yield emu


@pytest.fixture
async def emulator_factory() -> AsyncIterator[EmulatorFactory]:
    """Start emulators on demand (``await emulator_factory(config)``); all stop at teardown."""
    started: list[Emulator] = []

    async def factory(config: EmulatorConfig | None = None) -> Emulator:
        emu = Emulator(config)
        await emu.start()
        started.append(emu)
        return emu

    yield factory
    for emu in reversed(started):
        await emu.stop()
