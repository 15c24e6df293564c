# Discux in a container: gunicorn (gthread, gunicorn.conf.py) on 0.0.0.0:8000, migrating the
# database on every start. Data (SQLite file, generated demo key) lives in /data.
#
#   docker build -t discux .                     # base: Debian bookworm-slim from Docker Hub
#   podman build --build-arg BASE_IMAGE=localhost/discux-base:bookworm -t discux .
#
# BASE_IMAGE is any Debian bookworm image; python3 and python3-venv are installed into it when
# missing. Without a registry, .ci/test-container makes one from Debian packages (mmdebstrap,
# then podman import) with them already in.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BASE_IMAGE} AS base
RUN if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
           python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi
ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

# Build stage: the pinned requirements into a virtualenv (pip and its cache stay here).
FROM base AS build
RUN python3 -m venv /opt/discux/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/discux/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        -r /tmp/requirements.txt \
    && /opt/discux/venv/bin/pip uninstall --yes --disable-pip-version-check pip setuptools
COPY app.py gunicorn.conf.py /opt/discux/app/
COPY discux /opt/discux/app/discux
COPY migrations /opt/discux/app/migrations
COPY templates /opt/discux/app/templates
COPY static /opt/discux/app/static
# The code is read-only at run time: compile it now rather than on every start.
RUN /opt/discux/venv/bin/python -m compileall -q /opt/discux/app

# Run stage: the virtualenv and the code, owned by root; only /data belongs to the app's user.
FROM base
RUN useradd --user-group --uid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin discux \
    && install -d -o discux -g discux -m 0700 /data
COPY --from=build /opt/discux /opt/discux
WORKDIR /opt/discux/app
ENV PATH=/opt/discux/venv/bin:$PATH \
    FLASK_APP=app \
    DISCUX_INSTANCE_PATH=/data \
    DISCUX_BIND=0.0.0.0:8000
USER discux
EXPOSE 8000
# The port from DISCUX_BIND, the Host from DISCUX_BASE_URL (requests for other hosts get 400).
# compose.yaml repeats this check: podman's default OCI image format drops HEALTHCHECK.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python3", "-c", \
    "import os, urllib.parse as p, urllib.request as r; port = os.environ.get('DISCUX_BIND', ':8000').rsplit(':', 1)[1]; host = p.urlsplit(os.environ.get('DISCUX_BASE_URL') or 'http://localhost').netloc; r.urlopen(r.Request(f'http://127.0.0.1:{port}/readyz', headers={'Host': host}), timeout=4)"]
# Migrate, then hand PID 1 to gunicorn (its SIGTERM closes sockets with 1012, see gunicorn.conf.py).
# Any other command runs instead, e.g. `flask users list`.
CMD ["sh", "-c", "flask db upgrade && exec gunicorn -c gunicorn.conf.py"]
