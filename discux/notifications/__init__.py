"""Unread counts, read markers, the first-run dashboard and mention emails."""
