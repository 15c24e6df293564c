"""Messages of a room: posting, mentions, history, rendering."""
