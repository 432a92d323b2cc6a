"""What an IMDb title id is: ``tt`` and 7 to 10 ASCII digits, nothing before or after.

One rule for every part: selection skips and counts anything else, the client refuses it
before it can enter a URL, and the emulator answers it with a 404.
"""

from __future__ import annotations

import re

__all__ = ["IMDB_ID_PATTERN", "is_imdb_id"]

# [0-9], not \d: \d also matches other scripts' digits (e.g. Arabic-Indic ones).
IMDB_ID_PATTERN = r"tt[0-9]{7,10}"

_IMDB_ID_RE = re.compile(IMDB_ID_PATTERN)


def is_imdb_id(value: str) -> bool:
    """True when ``value`` is exactly an IMDb title id (fullmatch: no trailing newline)."""
    return _IMDB_ID_RE.fullmatch(value) is not None
