# The promote action's runtime: a slim official Python image, hash-locked wheels, the package.
#
# The base is pinned by tag (for humans) and by the digest of its multi-platform index (for
# machines): python:3.11-slim-bookworm as published on 2026-08-25 (Python 3.11.16), see
# docker-library/repo-info repos/python/remote/3.11-slim-bookworm.md. Bump both together.
# BASE_IMAGE exists only so that a machine without Docker Hub (the e2e tests) can substitute
# an equivalent local image; nothing else in this file changes for them.
# Keep the form `ARG BASE_IMAGE=<unquoted ref@sha256:...>` + `FROM ${BASE_IMAGE}` (braces):
# OpenSSF Scorecard (>= v5.3.0) substitutes the ARG default and reads the FROM as pinned
# (tests/e2e/test_packaging.py applies its rule).
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Dependencies first (their layer is reused while only the code changes). Every file is
# verified against requirements/runtime.txt; wheels only, no resolver, no build step.
COPY requirements/runtime.txt /tmp/runtime.txt
RUN python -m pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/runtime.txt \
    && rm /tmp/runtime.txt

# Only the package and the entrypoint; byte-compiled once here so every run starts fast.
COPY promote /opt/promote/promote
COPY entrypoint.py /opt/promote/entrypoint.py
RUN python -m compileall -q /opt/promote

ENTRYPOINT ["/usr/local/bin/python", "/opt/promote/entrypoint.py"]
