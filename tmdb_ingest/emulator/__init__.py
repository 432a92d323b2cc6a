"""A faithful fake of TMDB's movie API, and a generator of sample movies.csv files.

The tests, the demo and the benchmarks all run against the emulator over real TCP.
"""

from tmdb_ingest.emulator.server import (
    ALL_FAULTS,
    Emulator,
    EmulatorConfig,
    EmulatorStats,
    EmulatorThread,
)

__all__ = ["ALL_FAULTS", "Emulator", "EmulatorConfig", "EmulatorStats", "EmulatorThread"]
