# Sensorium GPU training image.
#
# Build:
#   docker build -t sensorium:gpu .
#
# Run with GPUs (needs the NVIDIA Container Toolkit on the host):
#   docker run --gpus all -v $PWD/runs:/runs IMAGE train image --data builtin:mnist --out /runs/mnist
#   docker run --gpus all IMAGE --help
# The container runs as user `sensorium` (uid 1000): the host folder mounted at /runs must be
# writable by uid 1000 (e.g. `mkdir -p runs && chown 1000 runs`). MNIST is already in the image's
# cache (SENSORIUM_CACHE), so the example needs no network.
#
# The base image ships TensorFlow with its CUDA libraries; pyproject.toml pins the same version
# (tensorflow==2.21.0) and .ci/install.sh holds the installed build fixed, so pip never swaps it.

FROM tensorflow/tensorflow:2.21.0-gpu

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

LABEL org.opencontainers.image.title="sensorium" \
      org.opencontainers.image.description="See, hear and read: image, speech and text models on TensorFlow/Keras, from data to the edge (GPU training image)" \
      org.opencontainers.image.version="0.8.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/tensorflow/tensorflow:2.21.0-gpu"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SENSORIUM_CACHE=/home/sensorium/.cache/sensorium \
    SENSORIUM_NO_VENV=1 \
    SENSORIUM_EDITABLE=0 \
    SENSORIUM_EXTRAS=full

# Non-root user, uid 1000 (some Ubuntu bases already have a uid-1000 user, `ubuntu`: it makes way).
RUN if getent passwd 1000 >/dev/null && [ "$(getent passwd 1000 | cut -d: -f1)" != sensorium ]; then \
        userdel "$(getent passwd 1000 | cut -d: -f1)"; \
    fi \
 && useradd --no-log-init --uid 1000 --user-group --create-home --shell /bin/bash sensorium \
 && mkdir -p /runs \
 && chown sensorium:sensorium /runs

WORKDIR /opt/sensorium

# System packages first (nodejs/npm, libsndfile1, ca-certificates), as root, in their own layer.
# The apt versions are deliberately not pinned (the base image's Ubuntu snapshot moves); that
# happens inside .ci/install.sh, the same procedure CI runs.
COPY .ci/install.sh .ci/install.sh
RUN SENSORIUM_APT_CLEAN=1 bash .ci/install.sh apt

# The project, installed (not editable) into the image's Python, as root.
COPY . .
RUN bash .ci/install.sh python

USER sensorium

# The MNIST data, fetched as the non-root user so the cache lands in its home.
RUN bash .ci/install.sh data \
 && rm -rf /home/sensorium/.npm

HEALTHCHECK NONE

ENTRYPOINT ["sensorium"]
CMD ["--help"]
