"""The landing page and the signed-in dashboard."""
