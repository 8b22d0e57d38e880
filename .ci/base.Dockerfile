# CI stand-in for python:3.11-slim-bookworm, built on a local debootstrap image
# (no container registry is reachable in CI). Debian bookworm's python3 is 3.11,
# the version requirements.txt is pinned for.
ARG DEBIAN_IMAGE=wm-ci/debian:bookworm
FROM ${DEBIAN_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
