FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
# Every package of pyproject.toml ([tool.setuptools.packages.find]); tests/unit/test_dockerfile.py checks it.
COPY federation federation
COPY ingest ingest
COPY alerts alerts
# setup.py compiles the router's chunk reader (C): the compiler is there for the build only.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir '.[postgres]' \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
COPY shards.yaml shards.docker.yaml ./
# A user of its own: nothing runs as root. What the processes write (the alerts
# database, the spool) lives in /data, a volume the router and the ingester share.
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home federation
ENV ALERTS_DB=/data/alerts.sqlite3 FEDERATION_SPOOL_DIR=/data/spool
USER federation
EXPOSE 8001
