"""Rooms: creating and running them, their people, agents, settings and invitations."""
