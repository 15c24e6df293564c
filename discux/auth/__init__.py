"""Signing in and out: sessions, email links, OAuth/OIDC providers and demo sign-in."""
