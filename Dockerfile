# The orchestrator image: the three-agent travel planner and its terminal.
#
#   docker compose run --rm orchestrator                  # interactive
#   docker build -t offline-agents/orchestrator .         # by hand
#   docker build --build-arg WHEELS=offline ...           # air-gapped: from ./wheels only,
#                                                         # filled by scripts/build-wheelhouse.sh
ARG PYTHON_IMAGE=python:3.13.9-slim-trixie

FROM ${PYTHON_IMAGE} AS build
# online: pip fetches the pinned wheels; offline: nothing but ./wheels is used (builds with --network none)
ARG WHEELS=online
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements/orchestrator.txt /tmp/requirements.txt
COPY wheels/ /tmp/wheels/
# Behind a TLS-inspecting proxy: the site's CA bundle as certs/ca-bundle.pem (certs/README.md).
# Only this build stage sees it; the image below copies the venv, not the bundle.
COPY certs/ /tmp/certs/
# Every package is pinned with its hash in requirements/ (exported from uv.lock).
RUN python3 -m venv /opt/venv \
 && if [ -s /tmp/certs/ca-bundle.pem ]; then export PIP_CERT=/tmp/certs/ca-bundle.pem; fi \
 && if [ "$WHEELS" = offline ]; then set -- --no-index --find-links /tmp/wheels; else set --; fi \
 && { /opt/venv/bin/pip install --require-hashes "$@" -r /tmp/requirements.txt \
 || { echo "error: pip could not install the requirements: behind a TLS-inspecting proxy, put the site's CA bundle in certs/ca-bundle.pem (certs/README.md); with no network, build with WHEELS=offline from ./wheels (make wheels)" >&2; exit 1; } } \
 && /opt/venv/bin/pip uninstall --yes --quiet pip
COPY pyproject.toml main.py /app/
COPY src/ /app/src/
# Compiled once here: the root filesystem may be read-only at run time, and start-up is faster.
RUN /opt/venv/bin/python -m compileall -q /app /opt/venv

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/src \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/app \
    MPLCONFIGDIR=/tmp/matplotlib
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# The history volume mounts at ~/.local/state: the folder must exist and be the user's, or Docker
# creates it root-owned and the terminal silently keeps history in memory only.
# /secrets likewise: the secrets job (this image) writes the stack's token and key there, into a
# volume that takes this folder's owner and mode (0750) when it is first mounted.
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
 && mkdir -p /home/app/.local/state /secrets \
 && chown -R 10001:10001 /home/app/.local /secrets \
 && chmod 0750 /secrets
USER 10001:10001
WORKDIR /app
# A terminal program, not a server: no healthcheck. It exits on Ctrl-D, /quit and SIGTERM.
ENTRYPOINT ["python", "main.py"]
