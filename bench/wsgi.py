"""The Discux app as the benchmarks serve it under gunicorn: configured from the environment
(DATABASE_URL, DISCUX_*), with rate limits off so a benchmark's poster is not throttled."""

from discux import create_app

app = create_app({"RATELIMIT_ENABLED": False})
