# One image for every process of the service. The default command serves the API;
# compose runs the worker (`python worker.py`), the stand-ins (`python -m standins`),
# migrations (`python -m db.migrate`) and backups (`python -m scripts.backup worker`) from the same image.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# pg_dump and pg_restore of the production server's major version (15), for the backup service: Debian
# bookworm's own client package; /backups is where its volume is mounted.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 oms \
    && useradd --system --uid 10001 --gid oms --no-create-home --home-dir /app oms \
    && mkdir /backups && chown oms:oms /backups

COPY --chown=oms:oms . .
# Compiled once here: the worker's workflow sandbox imports the workflow modules for every new order.
RUN python -m compileall -q /app

USER oms

# Inside a container the API must listen beyond loopback.
ENV OMS_API_HOST=0.0.0.0
EXPOSE 8000

CMD ["python", "-m", "api"]
