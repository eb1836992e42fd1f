# syntax=docker/dockerfile:1
# roriwatch: one image for the stream worker, the collectors and the Elasticsearch setup job;
# the Kubernetes manifests (deploy/k8s) pick the command. Build from the repository root:
#
#   docker build -t roriwatch:0.1.0 .
#
# The base is pinned to an exact Python patch release on Debian 12 (the distribution our test
# machines run). For reproducible production builds also pin its digest, e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest> .
# and let the dependency bot bump both together. Python dependencies are pinned by
# constraints.txt, the same file CI installs from.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: resolve and install roriwatch into a self-contained virtualenv --------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Metadata first, so that editing code does not invalidate the dependency layer.
COPY pyproject.toml constraints.txt README.md ./
# Runtime dependencies only, as pinned by constraints.txt (no dev or services extras).
RUN python -m venv /opt/roriwatch \
    && /opt/roriwatch/bin/pip install --upgrade pip \
    && python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
       > /tmp/requirements.txt \
    && /opt/roriwatch/bin/pip install -c constraints.txt -r /tmp/requirements.txt
COPY detectors ./detectors
COPY streams ./streams
# Not editable: the runtime stage copies the virtualenv alone, without /src. pip byte-compiles
# everything here, so the read-only root filesystem at run time costs nothing.
RUN /opt/roriwatch/bin/pip install --no-deps -c constraints.txt . \
    && /opt/roriwatch/bin/roriwatch --help >/dev/null

# ---- runtime: the virtualenv and a non-root user, nothing else --------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="roriwatch" \
      org.opencontainers.image.description="Streaming monitor for leaks of Vietnamese personal data" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify numeric users, and the
# manifests' securityContext (runAsUser/runAsGroup/fsGroup 10001) must match it.
RUN groupadd --system --gid 10001 roriwatch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/roriwatch --shell /usr/sbin/nologin roriwatch \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/roriwatch

COPY --from=build /opt/roriwatch /opt/roriwatch

ENV PATH=/opt/roriwatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/roriwatch \
    RORIWATCH_DATA_DIR=/var/lib/roriwatch \
    RORIWATCH_METRICS_PORT=9108

WORKDIR /var/lib/roriwatch
USER 10001:10001

# 9108: Prometheus metrics of the worker (collectors use 9109, set in their config).
EXPOSE 9108
ENTRYPOINT ["roriwatch"]
CMD ["worker"]
