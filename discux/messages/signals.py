"""What the message rules announce once a post is committed, for other parts to follow
(mention emails: discux.notifications). Each signal's sender is the app."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# message=, room=, poster=: a person's message was stored and pushed (post_user_message).
message_posted = _signals.signal("message-posted")
