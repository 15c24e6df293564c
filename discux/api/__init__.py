"""The JSON API under /api/v1: personal tokens, Bearer authentication, and thin routes over the
same domain functions the pages call (discux.api.routes)."""
