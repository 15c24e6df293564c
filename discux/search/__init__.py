"""Full-text search over the messages of the user's rooms (SQLite FTS5, MySQL FULLTEXT)."""

from discux.search.service import SearchHit, SearchResults, search_messages

__all__ = ["SearchHit", "SearchResults", "search_messages"]
