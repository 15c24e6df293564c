"""Invitation rules. The link's token is 256 random bits; only its SHA-256 is stored, so a
leaked database holds no usable link (the link is shown once, when it is made)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa

from discux.errors import DiscuxError
from discux.extensions import db
from discux.ids import sha256_hex, utcnow
from discux.models import Room, RoomInvitation, RoomParticipant, User
from discux.rooms.permissions import membership
from discux.rooms.service import RoomNotFound, require_participant

# Choice value -> lifetime (None = never expires); the form offers them in this order.
EXPIRY_CHOICES: dict[str, timedelta | None] = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "never": None,
}
DEFAULT_EXPIRY = "7d"
TOKEN_BYTES = 32  # 256 bits

OPEN, USED, EXPIRED, REVOKED = "open", "used", "expired", "revoked"


class InvitationUnavailable(DiscuxError):
    """The link cannot be used by this person; `state` says why (the page explains it)."""

    STATUS = {"unknown": 404, USED: 410, EXPIRED: 410, REVOKED: 410, "wrong_email": 403,
              "unverified_email": 403, "archived": 409}
    MESSAGES = {
        "unknown": "This invitation link is not valid. Check that you copied all of it, or ask "
                   "for a new one.",
        USED: "This invitation link has already been used. Ask the person who invited you for "
              "a new one.",
        EXPIRED: "This invitation link has expired. Ask the person who invited you for a new one.",
        REVOKED: "This invitation link was revoked by the room's owner or an admin.",
        "wrong_email": "This invitation is for another email address than the one you are "
                       "signed in with.",
        "unverified_email": "This invitation is for your email address, but you have not "
                            "proven yet that you own it: sign in with an email link to that "
                            "address, then open the invitation again.",
        "archived": "This room is archived, so nobody can join it right now.",
    }

    def __init__(self, state: str, invitation: RoomInvitation | None = None):
        super().__init__(self.MESSAGES[state], code=f"invitation_{state}")
        self.state = state
        self.status = self.STATUS[state]
        self.invitation = invitation


def status_of(invitation: RoomInvitation, now: datetime | None = None) -> str:
    """open, used, expired or revoked."""
    if invitation.revoked_at is not None:
        return REVOKED
    if invitation.used_at is not None:
        return USED
    if invitation.expires_at is not None and invitation.expires_at <= (now or utcnow()):
        return EXPIRED
    return OPEN


def _normalize_email(email: str | None) -> str | None:
    email = (email or "").strip().lower()
    return email or None


def create_invitation(
    actor: User, room: Room, email: str | None = None, expiry: str = DEFAULT_EXPIRY
) -> tuple[RoomInvitation, str]:
    """A new single-use link into the room; returns the row and the raw token (shown once)."""
    require_participant(actor, room, "invite")
    if expiry not in EXPIRY_CHOICES:
        raise DiscuxError("Choose when the link expires: 1 day, 7 days, 30 days or never.",
                          "expiry")
    lifetime = EXPIRY_CHOICES[expiry]
    token = secrets.token_urlsafe(TOKEN_BYTES)
    invitation = RoomInvitation(
        room_id=room.id,
        invited_by=actor.id,
        invite_token=sha256_hex(token),
        email=_normalize_email(email),
        expires_at=utcnow() + lifetime if lifetime else None,
    )
    db.session.add(invitation)
    db.session.commit()
    return invitation, token


def revoke_invitation(actor: User, room: Room, invitation_id: str) -> RoomInvitation:
    """Stop an unused link from working."""
    require_participant(actor, room, "invite")
    invitation = db.session.scalar(
        sa.select(RoomInvitation).where(
            RoomInvitation.id == invitation_id, RoomInvitation.room_id == room.id
        )
    )
    if invitation is None:
        raise RoomNotFound("There is no such invitation in this room.")
    if invitation.used_at is not None:
        raise DiscuxError("That link was already used; remove the person instead if needed.")
    if invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        db.session.commit()
    return invitation


def invitation_for_token(token: str) -> RoomInvitation | None:
    """The invitation behind a raw link token (matched by hash, so timing reveals nothing)."""
    if not token or len(token) > 128:
        return None
    return db.session.scalar(
        sa.select(RoomInvitation).where(RoomInvitation.invite_token == sha256_hex(token))
    )


def check_invitation(user: User, invitation: RoomInvitation | None, room: Room | None) -> None:
    """Raise InvitationUnavailable unless `user` may accept `invitation` now."""
    if invitation is None or room is None:
        raise InvitationUnavailable("unknown")
    state = status_of(invitation)
    if state != OPEN:
        raise InvitationUnavailable(state, invitation)
    if invitation.email and invitation.email != user.email.lower():
        raise InvitationUnavailable("wrong_email", invitation)
    if invitation.email and user.email_verified is None:
        # Only a proven address may claim a link bound to it (accounts.py explains the rule).
        raise InvitationUnavailable("unverified_email", invitation)
    if not room.is_active:
        raise InvitationUnavailable("archived", invitation)


def accept_invitation(user: User, token: str) -> Room:
    """Join the room the link leads to. One transaction marks the link used and adds the
    person, and only if the link was still unused: of two people accepting a single-use
    link at once, exactly one gets in. A member accepting again changes nothing."""
    for attempt in range(2):
        try:
            return _accept_once(user, token)
        except sa.exc.OperationalError:
            # The database gave up waiting on a lock (timeout, deadlock, busy SQLite):
            # read again and decide on what is committed now.
            db.session.rollback()
            if attempt:
                raise
    raise AssertionError("unreachable")


def _accept_once(user: User, token: str) -> Room:
    invitation = invitation_for_token(token)
    room = db.session.get(Room, invitation.room_id) if invitation else None
    if room is not None and membership(user, room.id) is not None:
        return room
    check_invitation(user, invitation, room)
    now = utcnow()
    claimed = db.session.execute(
        sa.update(RoomInvitation)
        .where(
            RoomInvitation.id == invitation.id,
            RoomInvitation.used_at.is_(None),
            RoomInvitation.revoked_at.is_(None),
            sa.or_(RoomInvitation.expires_at.is_(None), RoomInvitation.expires_at > now),
        )
        .values(used_at=now, used_by=user.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        db.session.refresh(invitation)
        raise InvitationUnavailable(status_of(invitation) if status_of(invitation) != OPEN
                                    else USED, invitation)
    db.session.add(RoomParticipant(room_id=room.id, user_id=user.id, role="member"))
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        # They joined through another link a moment ago: this link stays unused.
        db.session.rollback()
        if membership(user, room.id) is None:
            raise
    return room


def purge_expired(now: datetime | None = None) -> int:
    """Delete every invitation whose expiry has passed; returns how many."""
    deleted = db.session.execute(
        sa.delete(RoomInvitation).where(RoomInvitation.expires_at < (now or utcnow()))
    ).rowcount
    db.session.commit()
    return deleted
