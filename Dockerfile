# One image for every process of the service. The default command serves the API;
# compose runs the worker (`python worker.py`), the stand-ins (`python -m standins`)
# and migrations (`python -m db.migrate`) from the same image.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install -r requirements.lock

RUN groupadd --system --gid 10001 oms \
    && useradd --system --uid 10001 --gid oms --no-create-home --home-dir /app oms

COPY --chown=oms:oms . .
# Compiled once here: the worker's workflow sandbox imports the workflow modules for every new order.
RUN python -m compileall -q /app

USER oms

# Inside a container the API must listen beyond loopback.
ENV OMS_API_HOST=0.0.0.0
EXPOSE 8000

CMD ["python", "-m", "api"]
