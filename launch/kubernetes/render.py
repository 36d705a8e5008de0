r"""Renders a Kubeflow TFJob that trains on N workers; prints it as JSON.

    python launch/kubernetes/render.py --image=REGISTRY/gan-trainer:TAG \
        --workers=4 --gpus_per_worker=2 --pvc=gan-runs \
        --workdir=/mnt/shared/runs/mnist -- \
        --config=configs/dcgan_mnist.py --config.train.steps=20000 > tfjob.json
    kubectl apply -f tfjob.json

Everything after `--` is passed to `python -m trainer.main` unchanged, one
list element per flag (no shell in between, so spaces and quotes survive).

Why a TFJob (kubeflow.org/v1, Kubeflow Training Operator) and not a JobSet:
the TFJob operator creates one headless Service per replica and writes
TF_CONFIG into every pod, which MultiWorkerMirroredStrategy reads as it is.
A JobSet gives stable pod hostnames but no TF_CONFIG: a wrapper would have to
build it from the hostnames and the completion index, i.e. code of our own
in the container for what the operator already does.

Why restartPolicy OnFailure: a preempted or failed pod is restarted, and the
trainer resumes from the last checkpoint in the shared workdir by itself.
ExitCode would treat exit code 1 as permanent, and that is how the surviving
workers exit when a peer vanishes in the middle of a collective, so one
preemption would fail the whole job.

The output is JSON, which is also valid YAML; kubectl accepts it as a
manifest. That keeps this script free of a YAML dependency.
"""

import argparse
import json
import posixpath
import re
import sys
from typing import NoReturn

# Long enough for the chief to write a checkpoint after SIGTERM, before the
# kubelet sends SIGKILL.
_TERMINATION_GRACE_SECONDS = 120
# DNS-1123 label: what Kubernetes accepts as an object name or a namespace.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_MAX_LABEL = 63
# Flags this script sets itself; passing them after `--` would conflict.
_OWN_TRAINER_FLAGS = ("--strategy", "--workdir")


def _fail(message: str) -> NoReturn:
  """Exits with one `error:` line and status 1, as the trainer does."""
  sys.exit(f"error: {message}")


class _Parser(argparse.ArgumentParser):
  """An ArgumentParser whose errors are one line, like the trainer's."""

  def error(self, message: str) -> NoReturn:
    _fail(f"{message} (see --help)")


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  """Splits argv at the first `--` into this script's flags and the trainer's.

  Args:
    argv: the command-line arguments without the program name.

  Returns:
    The parsed flags of this script and the trainer flags, in order.
  """
  if "--" in argv:
    split = argv.index("--")
    own, trainer_flags = argv[:split], argv[split + 1:]
  else:
    own, trainer_flags = argv, []
  parser = _Parser(
      description="Render a Kubeflow TFJob (JSON) that runs "
      "`python -m trainer.main --strategy=multi_worker` on N workers. "
      "Trainer flags go after `--`.", allow_abbrev=False)
  parser.add_argument("--image", required=True,
                      help="container image, e.g. REGISTRY/gan-trainer:TAG")
  parser.add_argument("--workers", type=int, required=True,
                      help="number of worker pods (replicas)")
  parser.add_argument("--gpus_per_worker", type=int, default=0,
                      help="nvidia.com/gpu limit per worker; 0 for CPU only")
  parser.add_argument("--workdir", required=True,
                      help="shared workdir: a gs:// (or other) URL, or a path "
                      "under --mount_path when --pvc is given")
  parser.add_argument("--name", default="gan-trainer",
                      help="TFJob name (default %(default)s)")
  parser.add_argument("--namespace", default=None,
                      help="namespace (default: kubectl's current one)")
  parser.add_argument("--pvc", default=None,
                      help="PersistentVolumeClaim (ReadWriteMany) to mount "
                      "at --mount_path in every worker")
  parser.add_argument("--mount_path", default="/mnt/shared",
                      help="where --pvc is mounted (default %(default)s)")
  parser.add_argument("--backoff_limit", type=int, default=None,
                      help="fail the job after this many container restarts, "
                      "counted over all workers (default: no limit)")
  args, unknown = parser.parse_known_args(own)
  if unknown:
    _fail(f"unknown argument {unknown[0]!r}; trainer flags go after `--`, "
          "e.g. render.py --image=... --workers=2 --workdir=... -- "
          "--config=configs/dcgan_mnist.py")
  return args, trainer_flags


def _check(args: argparse.Namespace, trainer_flags: list[str]) -> None:
  """Exits with one `error:` line if the arguments cannot make a good job."""
  if not args.image.strip() or any(c.isspace() for c in args.image):
    _fail(f"--image={args.image!r} must be a non-empty image reference "
         "without spaces, e.g. REGISTRY/gan-trainer:TAG")
  if args.workers < 1:
    _fail(f"--workers={args.workers} is out of range; it must be >= 1")
  if args.gpus_per_worker < 0:
    _fail(f"--gpus_per_worker={args.gpus_per_worker} is out of range; it "
         "must be >= 0")
  if args.backoff_limit is not None and args.backoff_limit < 0:
    _fail(f"--backoff_limit={args.backoff_limit} is out of range; it must "
         "be >= 0")
  # Pods and Services are named <name>-worker-<index>, also a DNS label.
  longest = f"{args.name}-worker-{args.workers - 1}"
  if not _DNS_LABEL.fullmatch(args.name) or len(longest) > _MAX_LABEL:
    _fail(f"--name={args.name!r} must be lower-case letters, digits and '-', "
         "starting and ending with a letter or digit, and short enough that "
         f"{longest!r} has at most {_MAX_LABEL} characters")
  if args.namespace is not None and not (
      _DNS_LABEL.fullmatch(args.namespace) and
      len(args.namespace) <= _MAX_LABEL):
    _fail(f"--namespace={args.namespace!r} is not a valid namespace name "
         "(lower-case letters, digits and '-')")
  _check_workdir(args)
  for flag in trainer_flags:
    if flag.split("=", 1)[0] in _OWN_TRAINER_FLAGS:
      _fail(f"trainer flag {flag!r} is set by this script; pass --workdir "
           "before `--`, and --strategy is always multi_worker")


def _check_workdir(args: argparse.Namespace) -> None:
  """Every worker, and every restart, must see the same workdir."""
  if not args.workdir.strip():
    _fail("--workdir is empty; give a gs:// URL or a path on --pvc")
  if "://" in args.workdir:
    return
  if not args.mount_path.startswith("/"):
    _fail(f"--mount_path={args.mount_path!r} must be an absolute path")
  mount = posixpath.normpath(args.mount_path)
  workdir = posixpath.normpath(args.workdir)
  under_mount = workdir == mount or workdir.startswith(mount.rstrip("/") + "/")
  if args.pvc is None or not args.workdir.startswith("/") or not under_mount:
    _fail(f"--workdir={args.workdir!r} would be private to each pod and lost "
         "when it restarts; use a gs:// URL, or --pvc=<claim> with a workdir "
         f"under --mount_path ({args.mount_path})")


def render(args: argparse.Namespace, trainer_flags: list[str]) -> dict:
  """The TFJob manifest as a JSON-serialisable dict.

  Args:
    args: this script's checked flags.
    trainer_flags: flags for `python -m trainer.main`, in order.

  Returns:
    A kubeflow.org/v1 TFJob with `args.workers` Worker replicas.
  """
  container = {
      # The TFJob operator finds the training container by this name.
      "name": "tensorflow",
      "image": args.image,
      "command": ["python", "-m", "trainer.main"],
      "args": ["--strategy=multi_worker", f"--workdir={args.workdir}",
               *trainer_flags],
  }
  if args.gpus_per_worker > 0:
    container["resources"] = {
        "limits": {"nvidia.com/gpu": args.gpus_per_worker}}
  pod_spec = {
      "terminationGracePeriodSeconds": _TERMINATION_GRACE_SECONDS,
      "containers": [container],
  }
  if args.pvc is not None:
    container["volumeMounts"] = [
        {"name": "shared", "mountPath": args.mount_path}]
    pod_spec["volumes"] = [
        {"name": "shared",
         "persistentVolumeClaim": {"claimName": args.pvc}}]
  metadata = {"name": args.name}
  if args.namespace is not None:
    metadata["namespace"] = args.namespace
  run_policy = {"cleanPodPolicy": "None"}  # Keep finished pods for their logs.
  if args.backoff_limit is not None:
    run_policy["backoffLimit"] = args.backoff_limit
  return {
      "apiVersion": "kubeflow.org/v1",
      "kind": "TFJob",
      "metadata": metadata,
      "spec": {
          "runPolicy": run_policy,
          "tfReplicaSpecs": {
              # Workers only: worker 0 is the chief (trainer/distribute.py).
              "Worker": {
                  "replicas": args.workers,
                  "restartPolicy": "OnFailure",
                  "template": {
                      "metadata": {
                          # Kubeflow injects Istio sidecars into user
                          # namespaces, and TFJob pods do not work with one.
                          "annotations": {"sidecar.istio.io/inject": "false"}},
                      "spec": pod_spec,
                  },
              },
          },
      },
  }


def main(argv: list[str]) -> None:
  args, trainer_flags = _parse(argv)
  _check(args, trainer_flags)
  json.dump(render(args, trainer_flags), sys.stdout, indent=2)
  sys.stdout.write("\n")


if __name__ == "__main__":
  main(sys.argv[1:])
