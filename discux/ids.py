"""Identifiers and clocks shared by every model."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

import uuid6


def new_id() -> str:
    """A time-ordered UUIDv7 string: sorting by id sorts by creation."""
    return str(uuid6.uuid7())


def utcnow() -> datetime:
    """Naive UTC with millisecond precision, the form both engines store."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def epoch_ms() -> int:
    return int(time.time() * 1000)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
