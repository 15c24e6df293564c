"""Invitation links into a room: create, list, revoke, accept, purge."""
