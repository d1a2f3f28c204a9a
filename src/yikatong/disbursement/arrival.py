"""Arrival SMS (到账短信) for paid orders. Placeholder with the final signature: queues nothing yet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session


@dataclass
class ArrivalResult:
    queued: int
    no_phone: int = 0


def queue_arrivals(session: Session, order_ids: Sequence[int], now: datetime) -> ArrivalResult:
    return ArrivalResult(0, 0)
