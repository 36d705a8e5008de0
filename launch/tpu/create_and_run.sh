#!/usr/bin/env bash
# Creates a single-host Cloud TPU VM, installs this checkout on it with the TPU
# build of TensorFlow, and trains there:
#
#   launch/tpu/create_and_run.sh [trainer flags ...]
#   PROJECT=my-project WORKDIR=gs://my-bucket/runs/mnist \
#     launch/tpu/create_and_run.sh --config=configs/dcgan_mnist.py \
#     --config.runtime.mixed_precision=mixed_bfloat16
#
# Trainer flags are passed to `python3 -m trainer.main --strategy=tpu
# --tpu=local --workdir=$WORKDIR` unchanged, each quoted for the remote shell.
# Run it again to resume: the TPU VM is kept, the code is copied and installed
# again, and the trainer restarts from the last checkpoint in WORKDIR.
#
# NOT RUN: this script has not been run. The machine it was written on has
# neither Google Cloud credentials nor a TPU. It was checked with `bash -n`,
# its gcloud flags against `gcloud ... --help` (SDK 528), and its commands and
# quoting with a stand-in `gcloud` that prints its arguments.
# See launch/tpu/README.md for what was assumed.
set -euo pipefail

# What to change. Each can also be set in the environment.
PROJECT="${PROJECT:-my-project}"
ZONE="${ZONE:-us-central2-b}"  # A zone that has the ACCELERATOR type.
TPU_NAME="${TPU_NAME:-gan-trainer}"
ACCELERATOR="${ACCELERATOR:-v4-8}"  # Single host: v4-8, v5litepod-8, ...
WORKDIR="${WORKDIR:-gs://my-bucket/gan-trainer/runs/dcgan_mnist}"
# TPU VM software version, named tpu-vm-tf-<x.y.z>[-pod][-pjrt] by Google.
# The 2.21 image is assumed, not verified: list the real ones with
#   gcloud compute tpus tpu-vm versions list --zone="$ZONE"
# v5e/v6e use names like tpu-vm-tf-2.18.0-pjrt-v5e-and-v6.
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-vm-tf-2.21.0-pjrt}"
# The TPU build of TensorFlow (tensorflow-tpu and its libtpu), from Google's
# wheel index; it must match the `tensorflow==2.21.*` pin of pyproject.toml.
TF_TPU_REQUIREMENT="${TF_TPU_REQUIREMENT:-tensorflow-tpu==2.21.*}"
TF_TPU_INDEX="https://storage.googleapis.com/libtpu-tf-releases/index.html"

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
GCLOUD_TPU=(--project="$PROJECT" --zone="$ZONE")

if [[ "$WORKDIR" != gs://* ]]; then
  echo "error: WORKDIR=$WORKDIR must be a gs:// URL, so that checkpoints" \
       "outlive the TPU VM" >&2
  exit 1
fi

if gcloud compute tpus tpu-vm describe "$TPU_NAME" "${GCLOUD_TPU[@]}" \
    >/dev/null 2>&1; then
  echo "Using the existing TPU VM $TPU_NAME."
else
  gcloud compute tpus tpu-vm create "$TPU_NAME" "${GCLOUD_TPU[@]}" \
    --accelerator-type="$ACCELERATOR" --version="$RUNTIME_VERSION"
fi

# The same files as the container image (Dockerfile), from the working tree.
archive="$(mktemp --suffix=.tar.gz)"
trap 'rm -f "$archive"' EXIT
tar -czf "$archive" -C "$REPO" --exclude=__pycache__ \
  pyproject.toml README.md trainer configs launch
gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME":gan-trainer.tar.gz \
  "${GCLOUD_TPU[@]}"

# Install the project first, then the TPU build over it: `pip install -e .`
# alone would replace a preinstalled TPU build with the CPU wheel from PyPI.
# --force-reinstall makes the TPU build win on every run of this script.
install=(
  "rm -rf ~/gan-trainer" "mkdir ~/gan-trainer"
  "tar -xzf ~/gan-trainer.tar.gz -C ~/gan-trainer"
  "python3 -m pip install --upgrade pip"
  "python3 -m pip install -e ~/gan-trainer"
  "python3 -m pip install $(printf '%q' "$TF_TPU_REQUIREMENT") -f $TF_TPU_INDEX --force-reinstall"
)
joined="$(printf ' && %s' "${install[@]}")"
gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${GCLOUD_TPU[@]}" \
  --command="${joined# && }"

# On a TPU VM the TPU is local to the host: TPUClusterResolver(tpu="local").
train=(python3 -m trainer.main --strategy=tpu --tpu=local
       "--workdir=$WORKDIR" "$@")
gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${GCLOUD_TPU[@]}" \
  --command="cd ~/gan-trainer && $(printf '%q ' "${train[@]}")"

echo "Done. The TPU VM $TPU_NAME is still running (and billed). Delete it with:"
echo "  gcloud compute tpus tpu-vm delete $TPU_NAME --project=$PROJECT" \
     "--zone=$ZONE"
