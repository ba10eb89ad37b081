# inspectsync server image.
#
#   docker build -t inspectsync .
#   docker run -p 8000:8000 -v inspectsync-data:/data inspectsync serve --demo
#   docker run -p 8000:8000 -v inspectsync-data:/data \
#       -e INSPECTSYNC_JWT_SECRET="$(openssl rand -base64 48)" inspectsync
#
# See docs/operations.md ("Docker") for backups, user management and key rotation.

# --- build: turn the repository files into a wheel ---------------------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY checklists/ checklists/
COPY sync/ sync/
COPY server/ server/
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime ------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Pango (WeasyPrint lays out the PDF reports with it) and CJK fonts for Chinese in them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
       fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*

# The project and its runtime dependencies only (no dev extras), then no wheel left behind.
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

# A fixed, unprivileged uid/gid, so a bind-mounted /data can be chowned to match (10001).
RUN groupadd --system --gid 10001 inspectsync \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /data --shell /usr/sbin/nologin inspectsync \
    && mkdir -p /data \
    && chown 10001:10001 /data

# The database (inspectsync.db + -wal/-shm) and, with --demo, jwt-secret live in /data.
ENV INSPECTSYNC_DATA_DIR=/data \
    INSPECTSYNC_HOST=0.0.0.0 \
    INSPECTSYNC_PORT=8000
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001

EXPOSE 8000

# slim has no curl: ask /healthz with the standard library. urlopen raises (exit 1) on a
# refused connection, a timeout or any non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('INSPECTSYNC_PORT', '8000'), timeout=4)"]

# Exec form: inspectsync is PID 1 and receives SIGTERM from `docker stop` directly.
# `docker run IMAGE serve --demo`, `docker run IMAGE users list`, ... replace CMD.
ENTRYPOINT ["inspectsync"]
CMD ["serve"]
