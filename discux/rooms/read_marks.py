"""How far each member has read a room: a marker that only moves forward."""

from __future__ import annotations

import sqlalchemy as sa

from discux.extensions import db
from discux.models import RoomParticipant


def mark_read(participant: RoomParticipant, message_id: str | None) -> bool:
    """Move the member's read marker forward to `message_id` (never back), in its own commit;
    whether it moved."""
    if not message_id or (participant.last_read_message_id or "") >= message_id:
        return False
    moved = db.session.execute(
        sa.update(RoomParticipant)
        .where(RoomParticipant.id == participant.id,
               sa.or_(RoomParticipant.last_read_message_id.is_(None),
                      RoomParticipant.last_read_message_id < message_id))
        .values(last_read_message_id=message_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return bool(moved)
