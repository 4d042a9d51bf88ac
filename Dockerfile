# syntax=docker/dockerfile:1.7
# One image for the API (`picforge serve`), the worker (`python -m worker`) and the one-off
# migration task (`picforge migrate`). Dependencies come from uv.lock, exactly as tested.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /src
# Dependencies first: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY service ./service
COPY worker ./worker
COPY devstack ./devstack
RUN uv sync --frozen --no-dev --no-editable

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# RDS's CA bundle, for PICFORGE_DB_SSLMODE=verify-full (PICFORGE_DB_SSLROOTCERT, infra/containers.tf).
ADD --chmod=644 https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem /etc/ssl/certs/rds-global-bundle.pem
# The system bundle (ca-certificates) holds the Amazon roots RDS Proxy's certificate chains to.
RUN test -s /etc/ssl/certs/ca-certificates.crt \
    && groupadd --system --gid 10001 picforge \
    && useradd --system --uid 10001 --gid picforge --no-create-home picforge
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
EXPOSE 8000 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["picforge", "serve", "--host", "0.0.0.0", "--port", "8000"]
