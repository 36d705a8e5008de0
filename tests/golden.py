"""Fixed-seed runs whose final weights must not change with the code.

`tests/test_golden.py` runs each of them and compares the checkpoint's
checksums with `tests/fixtures/golden_checksums.json`. The DCGAN's and
R3GAN's were written by the code of 2026-12-07 before the step and the loop
were restructured; StyleGAN2's again by the code that made its upsampling
and downsampling convolutions StyleGAN2-ADA's (a change of the function on
purpose: tests/models/test_reference.py), with the checksums of the
resume fixture (written by the code before) trained on to step 20:

  python -m tests.golden --record            # rewrite the recorded values
  python -m tests.golden --record=stylegan2  # only those runs'
  python -m tests.golden --workdir=DIR       # write the resume fixture

A checksum is the SHA-256 of a group's tensors (the generator, the
discriminator, G_ema, each optimizer's slots, ...) read from the final
checkpoint in the order of their names: equal checksums mean bit-identical
weights.
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
RECORDED = FIXTURES / "golden_checksums.json"
# The key of the resume fixture's checksums at step 20.
RESUMED = "stylegan2/one_device_from_step10"

_QUIET = ["--config.train.log_every=10", "--config.train.image_every=1000",
          "--config.train.eval_every=0", "--config.train.histogram_samples=64",
          "--config.train.grid_size=4"]

# name -> (config, overrides): 20 steps of each family's modern step.
RUNS = {
    # The default config: non-saturating loss, BN, Adam, dropout in D.
    "dcgan": ("configs/dcgan_mnist.py",
              ["--config.train.steps=20", "--config.train.batch_size=64"]),
    # Lazy R1 (every 16), the path length (every 4), ADA's adaptive p.
    "stylegan2": ("configs/stylegan2.py:smoke", []),
    # rpgan with R1 and R2, cosine schedules of lr, gamma, beta2 and p.
    "r3gan": ("configs/r3gan.py:smoke", []),
}

# name -> flags: one device, and two replicas of the split CPU.
STRATEGIES = {
    "one_device": ["--strategy=one_device"],
    "two_replicas": ["--strategy=mirrored", "--num_cpu_devices=2"],
}


def train(run: str, strategy: str, workdir: str, *extra: str) -> None:
  """Trains run `run` with `strategy` into `workdir` (a real process)."""
  config, overrides = RUNS[run]
  command = [sys.executable, "-m", "trainer.main", f"--config={config}",
             f"--workdir={workdir}", *STRATEGIES[strategy], *_QUIET,
             *overrides, *extra]
  env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
  done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True,
                        text=True, check=False)
  if done.returncode:
    raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")


def checksums(workdir: str) -> dict[str, str]:
  """SHA-256 of the tensors in the workdir's latest checkpoint.

  "all" covers every tensor and does not depend on the names the checkpoint
  gives them (a variable reachable from two objects is stored under the
  first path found, which a restructured state may change); the other keys,
  one per top-level name, say where a difference lies.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  reader = tf.train.load_checkpoint(path)
  groups, tensors = {}, []
  for key in sorted(reader.get_variable_to_shape_map()):
    if not key.endswith(".ATTRIBUTES/VARIABLE_VALUE") or key.startswith(
        "save_counter"):
      continue  # the object graph and the number of saves
    value = np.ascontiguousarray(reader.get_tensor(key))
    tensor = hashlib.sha256(
        f"{value.dtype}{value.shape}".encode() + value.tobytes()).hexdigest()
    tensors.append(tensor)
    groups.setdefault(key.split("/")[0], []).append(tensor)
  digest = lambda parts: hashlib.sha256("".join(sorted(parts)).encode()
                                        ).hexdigest()
  return {"all": digest(tensors),
          **{group: digest(parts) for group, parts in sorted(groups.items())}}


def main(argv: list[str]) -> None:
  records = [arg for arg in argv if arg.split("=")[0] == "--record"]
  if records:
    _, _, names = records[0].partition("=")
    runs = names.split(",") if names else list(RUNS)
    recorded = json.loads(RECORDED.read_text()) if names else {}
    for run in runs:
      for strategy in STRATEGIES:
        with tempfile.TemporaryDirectory() as workdir:
          train(run, strategy, workdir)
          recorded[f"{run}/{strategy}"] = checksums(workdir)
          print(run, strategy, recorded[f"{run}/{strategy}"], flush=True)
      if run == "stylegan2":
        with tempfile.TemporaryDirectory() as workdir:
          resumed = os.path.join(workdir, "run")
          shutil.copytree(FIXTURES / "sg2_step10", resumed)
          train(run, "one_device", resumed)
          recorded[RESUMED] = checksums(resumed)
    RECORDED.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
  for arg in argv:
    if arg.startswith("--workdir="):
      # The resume fixture: StyleGAN2's smoke run stopped at step 10.
      train("stylegan2", "one_device", arg.split("=", 1)[1],
            "--config.train.steps=10")


if __name__ == "__main__":
  main(sys.argv[1:])
