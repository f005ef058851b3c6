# syntax=docker/dockerfile:1.7
# Prism gateway image: build a virtualenv in a builder stage, copy it into a slim
# runtime stage that runs as a non-root user.
ARG PYTHON_VERSION=3.11

# ------------------------------------------------------------------- builder
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first (cached while only the source changes): install the
# project's dependencies from pyproject.toml with an empty package.
COPY pyproject.toml README.md* ./
RUN mkdir gateway && touch gateway/__init__.py \
    && pip install --upgrade pip setuptools wheel \
    && pip install . \
    && pip uninstall -y prism-gateway \
    && rm -rf gateway

# Then the package itself, as a wheel (no editable install, no source tree at run time).
COPY gateway ./gateway
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip install --no-deps /wheels/*.whl

# ------------------------------------------------------------------- runtime
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="prism-gateway" \
      org.opencontainers.image.description="Prism: an OpenAI-compatible LLM gateway"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    GATEWAY_ENV=production \
    GATEWAY_LOG_FORMAT=json \
    GATEWAY_CONFIG=/app/config/prism.yaml \
    GATEWAY_USAGE_SPILL_DIR=/app/var/usage-spill \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prism-metrics

# bubblewrap: the sandbox of the built-in Python tool (docs/tools.md). It needs unprivileged user
# namespaces, which Docker's default seccomp profile refuses: without them the tool is unavailable
# (fail closed), the rest of the gateway is unaffected.
# tesseract-ocr + its Korean data: the OCR of jobs (docs/jobs.md), run by the jobs workers (and the
# gateway's in-process worker without a broker).
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap tesseract-ocr tesseract-ocr-kor tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 prism \
    && useradd --system --uid 10001 --gid prism --home-dir /app --shell /usr/sbin/nologin prism

COPY --from=builder /opt/venv /opt/venv
# The intent encoder's embedding table as a plain .npy file, built once here: workers read rows from it
# instead of decompressing 62.5 MB each (gateway/intent/weights.py; the root filesystem is read-only).
ENV PRISM_CACHE_DIR=/opt/prism-cache
RUN python -m gateway.intent.weights && chmod -R a+rX /opt/prism-cache
WORKDIR /app
COPY --chown=root:root config ./config
COPY --chown=root:root alembic ./alembic
COPY --chown=root:root alembic.ini ./alembic.ini
RUN mkdir -p /app/var/usage-spill /tmp/prism-metrics \
    && chown -R prism:prism /app/var /tmp/prism-metrics

USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8080'), timeout=2)"]

# Migrates at start unless GATEWAY_DATABASE_MIGRATE_ON_START=false, then uvicorn with GATEWAY_WORKERS workers.
CMD ["python", "-m", "gateway"]
