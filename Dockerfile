# The trainer's container image: `python -m trainer.main` plus whatever flags
# `docker run` or a Kubernetes manifest (launch/kubernetes) adds.
#
#   docker build -t REGISTRY/gan-trainer:TAG .                     # CPU
#   docker build --build-arg GPU=true -t REGISTRY/gan-trainer:TAG-gpu .
#
# GPU=true adds `tensorflow[and-cuda]`: the CUDA and cuDNN libraries as pip
# wheels, so the slim base stays; the node needs only the NVIDIA driver and
# the NVIDIA container toolkit (or the device plugin on Kubernetes).
# This file has not been built on the machine it was written on, which has
# no Docker engine.
FROM python:3.11-slim

ARG GPU=false

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# `python -m trainer.main` runs from here, so it imports /app/trainer and its
# default --config, configs/dcgan_mnist.py, resolves to /app/configs.
WORKDIR /app

# pyproject.toml names README.md as the package's readme: pip needs both.
COPY pyproject.toml README.md ./
COPY trainer/ trainer/
RUN if [ "$GPU" = true ]; then \
      pip install --no-cache-dir . 'tensorflow[and-cuda]==2.21.*'; \
    else \
      pip install --no-cache-dir .; \
    fi

# Experiment files and launchers change more often than the dependencies, so
# they come after the (slow) install.
COPY configs/ configs/
COPY launch/ launch/

ENTRYPOINT ["python", "-m", "trainer.main"]
