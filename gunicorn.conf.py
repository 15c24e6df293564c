"""gunicorn for Discux: gthread workers with enough threads for their WebSockets.

    gunicorn -c gunicorn.conf.py            # binds 127.0.0.1:8000, app:app

Why these numbers: flask-sock keeps a worker thread for the whole life of a socket (Discux reads
the socket from that same thread: no second reader thread), so one worker serves at most
`threads` sockets and requests together. Discux refuses sockets beyond DISCUX_MAX_SOCKETS per worker
at once with close code 1013 (clients retry with backoff). For that refusal to be immediate, a
worker needs a free thread to run it: threads = DISCUX_MAX_SOCKETS + DISCUX_HTTP_THREADS (for
ordinary requests and the refusals), and worker_connections above that, or new connections
would wait unaccepted, which is the silent hang NOTES.md warns about. Idle threads cost little
memory; an open socket costs ~60 KiB of worker RSS. Each worker keeps DISCUX_HTTP_THREADS +
DISCUX_AGENT_WORKERS database connections open (DISCUX_DATABASE_POOL_SIZE overrides), one per
thread that may hold one at once; socket threads borrow from a small overflow.

Several workers (or hosts) need Redis (DISCUX_REDIS_URL) so a message posted to one worker
reaches sockets held by another. See docs/deployment.md for the nginx lines.
"""

import os
import signal

max_sockets = int(os.environ.get("DISCUX_MAX_SOCKETS") or 1000)
http_threads = int(os.environ.get("DISCUX_HTTP_THREADS") or 32)

wsgi_app = "app:app"
bind = os.environ.get("DISCUX_BIND") or "127.0.0.1:8000"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
worker_class = "gthread"
threads = max_sockets + http_threads
worker_connections = threads + 100  # kept-alive HTTP connections wait on top of busy threads
keepalive = 5
timeout = 30
# Sockets never end by themselves: on SIGTERM they are closed with 1012 at once (see below) so
# clients reconnect to a live worker and replay what they missed; then the worker stops.
graceful_timeout = 10
# gunicorn believes X-Forwarded-Proto only from the addresses listed here. It follows
# DISCUX_TRUSTED_PROXIES (the hops the app believes, through ProxyFix in create_app): with 0,
# nobody's, so a client cannot claim https; with a proxy, the one on this host. An explicit
# FORWARDED_ALLOW_IPS (a proxy elsewhere) wins. A bad hop count trusts nobody here; the app
# then refuses to start, naming it.
_trusted_hops = os.environ.get("DISCUX_TRUSTED_PROXIES") or "0"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or (
    "127.0.0.1,::1" if _trusted_hops.isdigit() and int(_trusted_hops) > 0 else "")


def post_worker_init(worker):
    """Start the agents' turn queue as the worker boots (it takes over rooms whose worker died,
    and its hub follows every room's events from the start, so a socket that reconnects here
    mid-reply gets the exact text so far); on SIGTERM, close this worker's sockets with 1012
    (restart) before the graceful wait."""
    from discux.discussion.engine import start_engines

    start_engines()
    stop_worker = worker.handle_exit

    def handle_exit(sig, frame):
        hub = getattr(worker.wsgi, "extensions", {}).get("discux.realtime")
        if hub is not None:
            hub.close_all(1012, "The server is restarting.")
        stop_worker(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit)
