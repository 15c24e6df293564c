"""What both search engines hand back to the service, and the limits they share."""

from __future__ import annotations

from dataclasses import dataclass

# Ranked results stop here: relevance pages are numbered, and page 11 of a ranking is noise.
MAX_RANKED_RESULTS = 200
# A message still being streamed by an agent is not searchable until it is complete.
UNFINISHED_STATUS = "streaming"


@dataclass
class Found:
    """One page of matching message ids, best or newest first."""

    ids: list[str]
    has_more: bool
    # Newest-first: search on with `before=next_before` (exclusive) for the next page.
    next_before: str | None = None
    # Set when the engine looked at a bounded part of the history; said to the user.
    notice: str | None = None
