"""Identifiers and clocks shared by every model."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime

import uuid6


def new_id() -> str:
    """A time-ordered UUIDv7 string: sorting by id sorts by creation."""
    return str(uuid6.uuid7())


# UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 bits free around the version and
# variant bits; uuid7_at uses those 74 as a counter within one millisecond.
_COUNTER_LOW_BITS = 62
_COUNTER_LOW = (1 << _COUNTER_LOW_BITS) - 1


def uuid7_at(moment: datetime, after: str | None = None) -> str:
    """A UUIDv7 for the past `moment` (naive UTC) rather than now, greater than `after` when
    that id is of the same millisecond: ids made in a sequence's order sort in that order."""
    ms = max(0, int(moment.replace(tzinfo=UTC).timestamp() * 1000))
    previous = uuid.UUID(after).int if after else None
    if previous is not None and previous >> 80 == ms:
        counter = (((previous >> 64) & 0xFFF) << _COUNTER_LOW_BITS | previous & _COUNTER_LOW) + 1
    else:
        counter = secrets.randbits(70)  # room for 2^74 - 2^70 more ids in this millisecond
    value = (ms << 80 | 0x7 << 76 | (counter >> _COUNTER_LOW_BITS) << 64 | 0b10 << 62
             | counter & _COUNTER_LOW)
    return str(uuid.UUID(int=value))


def utcnow() -> datetime:
    """Naive UTC with millisecond precision, the form both engines store."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def epoch_ms() -> int:
    return int(time.time() * 1000)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
