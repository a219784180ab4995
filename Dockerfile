# The autoglm runtime (`autoglm serve`) as a container image.
#
#   pip wheel . -w wheels            # on the host: every dependency as a wheel
#   docker build --network host -t autoglm:local .
#
# With a wheels/ folder in the build context nothing is fetched from the network
# (pip runs with --no-index); without one, pip installs the source from its index.
# `autoglm deploy --target docker` builds this image itself (wheels included).
# Secrets never go into the image: the deployment passes them from an env file.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# Optional extras, e.g. EXTRAS=transformers for the torch backend.
ARG EXTRAS=""
ARG APP_VERSION=unknown

# OCI labels; `autoglm deploy` passes APP_VERSION from autoglm_cli/__init__.py.
LABEL org.opencontainers.image.title="autoglm" \
      org.opencontainers.image.description="autoglm runtime: an OpenAI-compatible gateway over a scheduler and Dask workers" \
      org.opencontainers.image.version="${APP_VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ARG APP_UID=10001

ENV VIRTUAL_ENV=/opt/autoglm \
    PATH=/opt/autoglm/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/autoglm \
    HF_HOME=/home/autoglm/.cache/huggingface \
    HF_HUB_CACHE=/var/cache/autoglm/hub \
    AUTOGLM_CONFIG=/etc/autoglm/config.yaml \
    AUTOGLM_DEPLOY__STATE_DIR=/var/lib/autoglm

COPY pyproject.toml README.md /src/
COPY autoglm_cli /src/autoglm_cli
# wheel[s] matches nothing when there is no wheels/ folder; README.md keeps the
# instruction valid then.
COPY README.md wheel[s] /src/wheels/

RUN set -eu; \
    python3 -m venv "$VIRTUAL_ENV"; \
    extras="${EXTRAS:+[$EXTRAS]}"; \
    if ls /src/wheels/autoglm-*.whl >/dev/null 2>&1; then \
        pip install --no-index --find-links /src/wheels "autoglm$extras"; \
    else \
        pip install "/src$extras"; \
    fi; \
    rm -rf /src; \
    autoglm --version

# A non-root user owns only what the service writes.
RUN set -eu; \
    groupadd --system --gid "$APP_UID" autoglm; \
    useradd --system --uid "$APP_UID" --gid "$APP_UID" --create-home --home-dir /home/autoglm \
        --shell /usr/sbin/nologin autoglm; \
    mkdir -p /etc/autoglm /var/lib/autoglm /var/cache/autoglm/hub; \
    chown -R autoglm:autoglm /var/lib/autoglm /var/cache/autoglm /home/autoglm
USER autoglm
WORKDIR /var/lib/autoglm

EXPOSE 8000
# Model loads can be slow: a long start period; `autoglm deploy` overrides it
# from the model's size.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-m", "autoglm_cli.ops.deploy.probe"]

ENTRYPOINT ["autoglm"]
CMD ["serve"]
