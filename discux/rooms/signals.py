"""What the room rules announce once a change is committed, for other parts to follow (the
real-time side listens; discux.realtime.sockets). Each signal's sender is the room id."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# user_id=: whose role in the room changed (change_role, transfer_ownership).
role_changed = _signals.signal("room-role-changed")
