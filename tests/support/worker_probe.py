"""The app as gunicorn serves it, wrapped so a test can tell its worker processes apart: HTTP
answers carry `X-Test-Worker: <pid>`, and a socket opened with `?probe=<name>` leaves a file
`$DISCUX_TEST_PROBE_DIR/<name>` holding the pid of the worker that took it. Tests only."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs

from app import app as discux_app

PROBE_DIR = Path(os.environ["DISCUX_TEST_PROBE_DIR"])


def app(environ, start_response):
    pid = str(os.getpid())
    probe = parse_qs(environ.get("QUERY_STRING", "")).get("probe")
    if probe and probe[0].isalnum():
        (PROBE_DIR / probe[0]).write_text(pid)

    def tagged_start_response(status, headers, exc_info=None):
        return start_response(status, [*headers, ("X-Test-Worker", pid)], exc_info)

    return discux_app(environ, tagged_start_response)


# flask-sock reads the Flask app's config through current_app; nothing else needs the wrapper.
app.extensions = discux_app.extensions
