# syntax=docker/dockerfile:1
# returnbridge: multi-stage image. The build stage resolves the locked dependencies with uv;
# the runtime stage carries only the virtual environment and runs as an unprivileged user.
#   docker build -t returnbridge .
#   docker run --rm returnbridge --version

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN pip install "uv==0.13.8"
WORKDIR /app
# Dependencies first (cached while only the source changes), exactly as locked.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev --no-editable

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="returnbridge" \
      org.opencontainers.image.description="Returns platforms (Loop Returns, ZigZag) to Khaos Control" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/returnbridge/returnbridge"
RUN groupadd --system --gid 10001 returnbridge \
 && useradd --system --uid 10001 --gid returnbridge --home-dir /var/lib/returnbridge \
            --shell /usr/sbin/nologin returnbridge \
 && install -d -o returnbridge -g returnbridge -m 0700 /var/lib/returnbridge \
 && install -d -m 0755 /etc/returnbridge
COPY --from=build --chown=root:root /app/.venv /opt/returnbridge
ENV PATH="/opt/returnbridge/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    RB_CONFIG=/etc/returnbridge/returnbridge.toml \
    RB_SERVER__HOST=0.0.0.0 \
    RB_LOG__FORMAT=json
WORKDIR /var/lib/returnbridge
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["returnbridge"]
CMD ["serve"]
