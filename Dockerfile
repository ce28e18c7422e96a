# The reference service (aegis_service) as a small, non-root image.
#
#   docker build -t aegis-service .                   # a normal Docker host
#   docker build --network host -t aegis-service .    # a host-network-only machine (see README)
#
# Stage 1 builds every wheel (the service's and its runtime dependencies', as service/pyproject.toml
# lists them) and installs them into a venv without pip; stage 2 copies only that venv onto a fresh
# slim Python. Nothing of the pytest plugin goes in. Written for the classic builder too (no
# BuildKit-only syntax).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
# WITH_COVERAGE=1 adds coverage.py, so that a measured pytest session measures the service in
# its container too (docs/app-contract.md).
ARG WITH_COVERAGE=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: this layer is reused until the service's project file changes.
COPY service/pyproject.toml service/
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('service/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > requirements.txt \
 && pip wheel --wheel-dir /wheels -r requirements.txt
COPY service service
RUN pip wheel --no-deps --wheel-dir /wheels ./service \
 && python -m venv --without-pip /opt/aegis \
 && pip --python /opt/aegis/bin/python install --no-index --find-links /wheels --no-deps /wheels/*.whl \
 && if [ "$WITH_COVERAGE" = "1" ]; then pip --python /opt/aegis/bin/python install --no-deps coverage; fi \
 && /opt/aegis/bin/python -c "import aegis_service.__main__, aegis_service.app, fastapi, uvicorn, uvloop, psycopg, psycopg_pool, nats, nkeys, prometheus_client" \
 && find /opt/aegis -name __pycache__ -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/aegis/bin:$PATH \
    AEGIS_HTTP_BIND=0.0.0.0:8080
RUN groupadd --system --gid 10001 aegis \
 && useradd --system --uid 10001 --gid aegis --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin aegis
COPY --from=builder /opt/aegis /opt/aegis
COPY deploy/healthcheck.py /opt/aegis/healthcheck.py
USER aegis:aegis
WORKDIR /tmp
EXPOSE 8080
# /readiness: NATS connected and, when AEGIS_DATABASE_URL is set, the schema at head.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "/opt/aegis/healthcheck.py"]
ENTRYPOINT ["python", "-m", "aegis_service"]
