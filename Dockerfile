# The hosted demo: the dashboard on $PORT (default 8501) with the caps of deploy/hosted-demo.env.
#   make demo    (or: docker build -t sharecore-demo . && docker run --rm -p 8501:8501 sharecore-demo)
# README, "Hosting a demo", says how to deploy it. Linted with hadolint; not built on the dev
# machine, which has no Docker daemon.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PORT=8501 \
    SHARECORE_DATA_DIR=/data

# The hosted-demo profile: the same values as deploy/hosted-demo.env, which says why each is set
# (tests/test_hosting.py checks that they are equal). `docker run -e SHARECORE_MAX_STEPS=...` overrides one.
ENV SHARECORE_MAX_CONCURRENT_RUNS=1 \
    SHARECORE_MAX_RUN_SECONDS=120 \
    SHARECORE_MAX_STEPS=2000 \
    SHARECORE_MAX_PARAMS=500000 \
    SHARECORE_MAX_ACTIVATION_MB=224 \
    SHARECORE_MAX_BATCH_SIZE=256 \
    SHARECORE_MAX_INPUT_SIZE=65536 \
    SHARECORE_MAX_USES=16 \
    SHARECORE_MAX_RECORDED_ROWS=200000 \
    SHARECORE_MAX_SPEC_BYTES=200000 \
    SHARECORE_MAX_MODEL_MB=5 \
    STREAMLIT_SERVER_MAX_UPLOAD_SIZE=5

WORKDIR /app

# The app runs as a user without a password or root rights. The code stays owned by root, so the
# app cannot change it; the user's home takes what Keras and Streamlit write (~/.keras, ~/.streamlit),
# and /data (SHARECORE_DATA_DIR) the run store, runs.sqlite3: the one folder of the image it writes.
RUN groupadd --gid 10001 sharecore \
    && useradd --uid 10001 --gid 10001 --create-home --no-log-init sharecore \
    && mkdir /data \
    && chown 10001:10001 /data

# requirements.txt installs the CPU-only TensorFlow wheel on Linux x86-64 (the regular wheel,
# CPU-only too, on arm64). Its own layer, so that a code change does not reinstall it.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# Only what the app needs: the router, the pages, the shared UI package, the library, Streamlit's config.
COPY streamlit_app.py ./
COPY ui/ ui/
COPY pages/ pages/
COPY sharecore/ sharecore/
COPY .streamlit/config.toml .streamlit/config.toml

# Kept runs outlive the container only in a volume: `docker run -v sharecore-runs:/data ...` (a new named
# volume starts as a copy of this folder, owned by 10001). Declared after the folder is made: a later
# build step's change to a declared volume would be discarded.
VOLUME /data

# By number, so that a host that requires a non-root user (Kubernetes' runAsNonRoot) can tell.
USER 10001:10001
EXPOSE 8501

# Streamlit answers "ok" on /_stcore/health once it serves. The slim image has no curl: Python's
# urllib raises on a refused connection or a status other than 2xx, which fails the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://localhost:{os.environ.get('PORT', '8501')}/_stcore/health\", timeout=4)"]

# A shell expands $PORT (hosts such as Cloud Run, Render and Fly.io set it); exec hands the
# process over to Streamlit, which stops cleanly on the SIGTERM that `docker stop` sends.
CMD ["sh", "-c", "exec streamlit run streamlit_app.py --server.port=\"${PORT}\" --server.address=0.0.0.0"]
