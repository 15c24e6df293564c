"""The loop guard by progress: a hand-over chain stops when its replies stop adding anything.

The count guard (discux.discussion.engine: MAX_HANDOVERS, MAX_REPLIES) bounds a chain however
good it is; this one stops it early when the latest reply of a generation

- *repeats* an earlier reply of the same generation: the difflib similarity of their words
  (`similarity`) is at least REPEAT_THRESHOLD; or
- is a *bare agreement* answering a bare agreement (`agrees_back_and_forth`): two agents only
  saying "agreed" to each other.

Only the hand-overs the stalled reply asks for are refused; agents a person mentioned still
answer. "Continue" starts a new generation, so the guard looks at that stretch alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

import sqlalchemy as sa

from discux.extensions import db
from discux.models import Message

# At or above this similarity (0..1, `similarity`) a reply repeats an earlier one: a reply
# reworded by a word or two stays above it, two replies on one topic making different points
# fall well below.
REPEAT_THRESHOLD = 0.8
# A bare agreement has at most this many words once mentions are dropped…
AGREEMENT_MAX_WORDS = 12
# …and at most this many words outside AGREEMENT_WORDS that the chain has not said already.
AGREEMENT_MAX_NEW_WORDS = 2
# At least one of these makes a short reply an agreement.
AGREEMENT_MARKERS = frozenset({
    "agree", "agreed", "agreeing", "yes", "yeah", "yep", "exactly", "absolutely", "indeed",
    "concur", "right", "correct", "true", "precisely", "definitely", "totally", "+1",
    "seconded", "same", "likewise"
})
# Words that carry no content in an agreement ("I fully agree with that, great point!").
AGREEMENT_WORDS = AGREEMENT_MARKERS | frozenset({
    "i", "i'm", "im", "you", "you're", "we", "we're", "that", "that's", "thats", "this", "it",
    "it's", "its", "is", "are", "was", "a", "an", "the", "with", "to", "of", "on", "and", "so",
    "too", "also", "fully", "completely", "strongly", "wholeheartedly", "very", "well", "good",
    "great", "nice", "point", "points", "said", "spot", "sense", "makes", "make", "thanks",
    "thank", "sure", "ok", "okay", "fine", "idea", "plan", "there", "me", "my", "here", "what",
    "couldn't", "couldnt", "have", "better", "back", "over", "let's", "lets", "go", "agreed",
    "all"
})

MENTION = re.compile(r"@[\w.-]+")
WORD = re.compile(r"[+\w][\w'’+]*")

STALL_REASONS = {
    "repeating": "{agent} repeated what was already said",
    "agreeing": "{agent} and {previous} only agreed with each other",
}


def words_of(text: str) -> list[str]:
    """The reply's words, lowercased, without @mentions and punctuation."""
    return [w.replace("’", "'") for w in WORD.findall(MENTION.sub(" ", text.lower()))]


def similarity(a: str, b: str) -> float:
    """How alike two replies are, 0..1: difflib's ratio (2 × matched words / all words) of
    their word sequences, mentions, case and punctuation ignored."""
    first, second = words_of(a), words_of(b)
    if not first or not second:
        return 0.0
    return SequenceMatcher(None, first, second, autojunk=False).ratio()


def repeats(reply: str, earlier: Sequence[str]) -> bool:
    """Whether the reply is a near-duplicate (REPEAT_THRESHOLD) of any earlier reply."""
    return any(similarity(reply, text) >= REPEAT_THRESHOLD for text in earlier)


def is_bare_agreement(reply: str, said: Sequence[str] = ()) -> bool:
    """Whether the reply only agrees: short, with an agreement marker, and at most
    AGREEMENT_MAX_NEW_WORDS words that are neither agreement words nor already in `said`."""
    words = words_of(reply)
    # A question asks for something new, whatever its words.
    if not words or len(words) > AGREEMENT_MAX_WORDS or "?" in reply:
        return False
    if not AGREEMENT_MARKERS.intersection(words):
        return False
    known = {w for text in said for w in words_of(text)}
    new = [w for w in words if w not in AGREEMENT_WORDS and w not in known]
    return len(new) <= AGREEMENT_MAX_NEW_WORDS


def agrees_back_and_forth(reply: str, previous: str, said: Sequence[str] = ()) -> bool:
    """The agreement rule: the reply and the one before it both only agree. Why: one "Agreed,
    over to you" is a normal hand-over; a second in a row means nobody adds anything."""
    return is_bare_agreement(previous, said) and is_bare_agreement(reply, [*said, previous])


@dataclass(frozen=True)
class Stall:
    """Why a chain stopped making progress, for the status line."""

    reason: str  # a key of STALL_REASONS
    agent: str
    previous: str | None = None

    @property
    def why(self) -> str:
        return STALL_REASONS[self.reason].format(agent=self.agent, previous=self.previous)


def stall_of(replies: Sequence[tuple[str, str]], trigger: str = "") -> Stall | None:
    """Whether the last of a generation's replies, (agent name, text) in order, made no
    progress; `trigger` is the message that set the generation off."""
    if not replies:
        return None
    agent, text = replies[-1]
    earlier = [t for _, t in replies[:-1]]
    if earlier and replies[-2][0] != agent and agrees_back_and_forth(
            text, earlier[-1], [trigger, *earlier[:-1]]):
        return Stall("agreeing", agent, replies[-2][0])
    if repeats(text, earlier):
        return Stall("repeating", agent)
    return None


def generation_stall(room_id: str, generation_id: str, trigger_id: str) -> Stall | None:
    """The stall of the generation's latest complete reply, read from the room's messages.

    A generation's replies answer its trigger and, their UUIDv7 ids sorting by creation
    (discux/ids.py), have ids above the generation's own, which was made before them."""
    replies = db.session.execute(
        sa.select(Message.sender_name, Message.content)
        .where(Message.room_id == room_id, Message.type == "agent",
               Message.status == "complete", Message.reply_to_id == trigger_id,
               Message.id > generation_id)
        .order_by(Message.id)).all()
    trigger = db.session.scalar(sa.select(Message.content).where(Message.id == trigger_id))
    return stall_of([(name or "An agent", text or "") for name, text in replies], trigger or "")
