FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY federation federation
COPY ingest ingest
COPY alerts alerts
RUN pip install --no-cache-dir .
COPY shards.yaml shards.docker.yaml ./
EXPOSE 8001
