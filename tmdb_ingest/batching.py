"""Raw TMDB bodies -> the bytes of one data file: a JSON array, bodies kept byte for byte.

A body is accepted only if it is one JSON object (checked by the client); the array is
built by joining the raw bytes, so every movie lands exactly as TMDB sent it, field for
field, with no re-encoding of numbers or text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Batch", "Batcher", "encode_batch"]


def encode_batch(bodies: list[bytes]) -> bytes:
    """Join raw JSON object bodies into the bytes of one JSON array."""
    return b"[" + b",\n".join(body.strip() for body in bodies) + b"]\n"


@dataclass(slots=True)
class Batch:
    """Up to ``batch_size`` fetched movies, in the order they arrived."""

    ids: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self) -> bytes:
        """The data file's bytes."""
        return encode_batch(self.bodies)


class Batcher:
    """Collects fetched bodies and cuts a :class:`Batch` every ``batch_size`` movies."""

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self._current = Batch()

    def add(self, imdb_id: str, body: bytes) -> Batch | None:
        """Add one movie; return the batch it completed, if any."""
        self._current.ids.append(imdb_id)
        self._current.bodies.append(body)
        if len(self._current) >= self.batch_size:
            full, self._current = self._current, Batch()
            return full
        return None

    def flush(self) -> Batch | None:
        """Return the partial batch (or None when empty) and start a new one."""
        if not self._current.ids:
            return None
        partial, self._current = self._current, Batch()
        return partial

    @property
    def pending(self) -> int:
        """Movies held in the partial batch."""
        return len(self._current)
