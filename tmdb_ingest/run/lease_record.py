"""The lease object as it is stored: one small JSON record (see :mod:`tmdb_ingest.run.lease`
for the holder that writes it and docs/lease.md for the protocol)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson

__all__ = ["LeaseRecord", "iso"]


def iso(moment: dt.datetime) -> str:
    """``moment`` as the record stores it: ISO 8601, UTC, milliseconds."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The lease object as stored: who holds it, since when, until when."""

    run_id: str
    shard: str
    holder: str
    token: str  # random per acquisition: tells two holders with the same name apart
    epoch: int  # 1 for the first holder, +1 at each takeover
    renewal: int  # +1 at each renewal attempt: tells which of several attempts landed
    started: str  # ISO UTC, when this holder acquired it
    expires: str  # ISO UTC

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "run_id": self.run_id,
                "shard": self.shard,
                "holder": self.holder,
                "token": self.token,
                "epoch": self.epoch,
                "renewal": self.renewal,
                "started": self.started,
                "expires": self.expires,
            }
        )

    @classmethod
    def parse(cls, raw: bytes) -> LeaseRecord | None:
        """The record in ``raw``, or None when it is not a lease."""
        try:
            data = orjson.loads(raw)
            record = cls(
                run_id=str(data["run_id"]),
                shard=str(data["shard"]),
                holder=str(data["holder"]),
                token=str(data["token"]),
                epoch=int(data["epoch"]),
                renewal=int(data["renewal"]),
                started=str(data["started"]),
                expires=str(data["expires"]),
            )
            record.expires_at()
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        return record

    def expires_at(self) -> dt.datetime:
        moment = dt.datetime.fromisoformat(self.expires)
        if moment.tzinfo is None:
            raise ValueError("expires has no time zone")
        return moment

    def is_same_holding(self, other: LeaseRecord) -> bool:
        """Whether ``other`` is the same holder's lease (same token and epoch)."""
        return self.token == other.token and self.epoch == other.epoch
