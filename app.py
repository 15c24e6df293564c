"""Entry point for `flask --app app` and `gunicorn app:app`."""

import sys

from discux import ConfigError, create_app

try:
    app = create_app()
except ConfigError as error:
    # One clear line naming the variable, not a traceback.
    sys.exit(f"discux: configuration error: {error}")
