"""Tests of launch/kubernetes/render.py, run as a real subprocess."""

import json
import pathlib
import subprocess
import sys

import pytest

# Each test runs the renderer as a process.
pytestmark = pytest.mark.slow

RENDER = (pathlib.Path(__file__).resolve().parents[2] / "launch" /
          "kubernetes" / "render.py")

# Flags with spaces, quotes, brackets and `=` in their values: each must reach
# the trainer as one argument, unchanged.
_AWKWARD_FLAGS = [
    "--config=configs/dcgan_mnist.py:smoke",
    "--config.data.source=folder:/data/my images",
    "--config.data.split=train[:90%]",
    "--config.data.tfds_data_dir=/data/O'Brien \"tfds\" dir",
    "--config.train.steps=500",
]


def _render(args: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, str(RENDER), *args], cwd=cwd,
                        capture_output=True, text=True, timeout=60,
                        check=False)


def _worker(manifest: dict) -> dict:
  return manifest["spec"]["tfReplicaSpecs"]["Worker"]


@pytest.mark.parametrize(
    "args, workers, gpus, workdir, trainer_flags, namespace", [
        (["--image=registry.example/gan-trainer:v1", "--workers=1",
          "--workdir=gs://bucket/runs/one"],
         1, 0, "gs://bucket/runs/one", [], None),
        (["--image=registry.example/gan-trainer:v2", "--workers=4",
          "--gpus_per_worker=2", "--pvc=gan-runs",
          "--workdir=/mnt/shared/runs/four", "--", *_AWKWARD_FLAGS],
         4, 2, "/mnt/shared/runs/four", _AWKWARD_FLAGS, None),
        (["--image=registry.example/gan-trainer@sha256:abc", "--workers=3",
          "--gpus_per_worker=0", "--name=exp-7", "--namespace=ml",
          "--pvc=claim", "--mount_path=/data", "--workdir=/data/runs/three",
          "--", "--config.seed=3", "--config.seed=4"],
         3, 0, "/data/runs/three", ["--config.seed=3", "--config.seed=4"],
         "ml"),
    ])
def test_renders_tfjob(tmp_path, args, workers, gpus, workdir, trainer_flags,
                       namespace):
  result = _render(args, cwd=tmp_path)
  assert result.returncode == 0, result.stderr

  manifest = json.loads(result.stdout)
  assert manifest["apiVersion"] == "kubeflow.org/v1"
  assert manifest["kind"] == "TFJob"
  assert manifest["metadata"].get("namespace") == namespace
  assert list(manifest["spec"]["tfReplicaSpecs"]) == ["Worker"]
  worker = _worker(manifest)
  assert worker["replicas"] == workers
  # A preempted pod must come back and resume from the checkpoint.
  assert worker["restartPolicy"] == "OnFailure"
  pod = worker["template"]["spec"]
  assert pod["terminationGracePeriodSeconds"] >= 60
  [container] = pod["containers"]
  assert container["name"] == "tensorflow"  # The operator looks for it.
  image = next(a for a in args if a.startswith("--image=")).split("=", 1)[1]
  assert container["image"] == image
  assert container["command"] + container["args"] == [
      "python", "-m", "trainer.main", "--strategy=multi_worker",
      f"--workdir={workdir}", *trainer_flags]
  limits = container.get("resources", {}).get("limits", {})
  if gpus:
    assert limits == {"nvidia.com/gpu": gpus}
  else:
    assert "nvidia.com/gpu" not in limits


def test_pvc_is_mounted_where_the_workdir_is(tmp_path):
  result = _render(
      ["--image=img:1", "--workers=2", "--pvc=gan-runs",
       "--mount_path=/shared", "--workdir=/shared/runs/x"], cwd=tmp_path)
  assert result.returncode == 0, result.stderr

  pod = _worker(json.loads(result.stdout))["template"]["spec"]
  [volume] = pod["volumes"]
  assert volume["persistentVolumeClaim"] == {"claimName": "gan-runs"}
  assert pod["containers"][0]["volumeMounts"] == [
      {"name": volume["name"], "mountPath": "/shared"}]


def test_without_pvc_there_is_no_volume(tmp_path):
  result = _render(["--image=img:1", "--workers=2", "--workdir=gs://b/r"],
                   cwd=tmp_path)
  assert result.returncode == 0, result.stderr

  pod = _worker(json.loads(result.stdout))["template"]["spec"]
  assert "volumes" not in pod
  assert "volumeMounts" not in pod["containers"][0]


def test_output_is_also_yaml(tmp_path):
  yaml = pytest.importorskip("yaml")
  result = _render(["--image=img:1", "--workers=2", "--workdir=gs://b/r",
                    "--", *_AWKWARD_FLAGS], cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert yaml.safe_load(result.stdout) == json.loads(result.stdout)


_GOOD = {"--image": "img:1", "--workers": "2", "--workdir": "gs://b/r"}


def _args(**changes: str | None) -> list[str]:
  """_GOOD's flags with some replaced; None leaves a flag out."""
  flags = {**_GOOD, **{f"--{k}": v for k, v in changes.items()}}
  return [f"{k}={v}" for k, v in flags.items() if v is not None]


@pytest.mark.parametrize("args, mentions", [
    (_args(workers="0"), "--workers=0"),
    (_args(workers="-3"), "--workers=-3"),
    (_args(workers="two"), "--workers"),
    (_args(workers=None), "--workers"),
    (_args(gpus_per_worker="-1"), "--gpus_per_worker=-1"),
    (_args(image=""), "--image"),
    (_args(image=None), "--image"),
    (_args(workdir=None), "--workdir"),
    (_args(workdir=""), "--workdir"),
    (_args(workdir="runs/local"), "--workdir='runs/local'"),
    (_args(workdir="/mnt/other/run", pvc="claim"), "--mount_path"),
    (_args(name="Has_Upper"), "--name"),
    (_args(namespace="bad ns"), "--namespace"),
    (_args(backoff_limit="-1"), "--backoff_limit=-1"),
    ([*_args(), "--config=configs/dcgan_mnist.py"], "after `--`"),
    ([*_args(), "--", "--strategy=mirrored"], "--strategy=mirrored"),
    ([*_args(), "--", "--workdir=elsewhere"], "--workdir=elsewhere"),
])
def test_bad_input_gives_one_error_line(tmp_path, args, mentions):
  result = _render(args, cwd=tmp_path)

  assert result.returncode != 0
  assert result.stdout == ""
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith("error: ")
  assert mentions in lines[0]
