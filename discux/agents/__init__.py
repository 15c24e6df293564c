"""Agents: personas with a style and a look, their pages, gallery, stats and "Try it"."""
