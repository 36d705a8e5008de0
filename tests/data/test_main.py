"""trainer/data/__main__.py, the packed-dataset tool, as real processes."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import PROCESS_TIMEOUT_SECONDS, REPO, run_command
from trainer.data import packed
from trainer.data import sources
from trainer.errors import UserError

_COUNT, _SHARD_SIZE = 1000, 25  # 40 shards of real MNIST digits


def _read(spec: str, split: str) -> dict[str, np.ndarray]:
  source = sources.load(spec, sources.Request(
      split=split, image_size=28, channels=1, resize=False))
  data = source.read(tf.range(source.num_examples, dtype=tf.int64))
  return {k: v.numpy() for k, v in data.items()}


@pytest.mark.slow
def test_an_interrupted_create_is_not_a_dataset_and_is_completed_by_another(
    mnist_dir, tmp_path):
  dest = tmp_path / "digits"
  command = (sys.executable, "-m", "trainer.data", "create",
             f"--source=idx:{mnist_dir}", f"--split=test[:{_COUNT}]",
             f"--dest={dest}", f"--shard_size={_SHARD_SIZE}", "--workers=1")
  creating = tmp_path / "digits.creating"
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
  try:
    deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
    # Killed once its first shard is done, with 39 still to write.
    while not list(creating.glob("*.done.json")):
      assert process.poll() is None, process.stderr.read().decode()[-3000:]
      assert time.monotonic() < deadline, "no shard was written in time"
      time.sleep(0.02)
  finally:
    process.kill()
    process.wait()
  done = sorted(p.name for p in creating.glob("*.done.json"))
  assert 1 <= len(done) < _COUNT // _SHARD_SIZE
  kept = {p.name: p.stat().st_ino for p in creating.glob("*.array_record")
          if p.name + ".done.json" in done}
  with pytest.raises(UserError, match=r"not a packed dataset.*unfinished"):
    sources.load(f"packed:{dest}", sources.Request(
        split="test", image_size=28, channels=1, resize=False))

  code, out, err = run_command(*command)
  assert code == 0, err[-3000:]
  assert json.loads(out)["count"] == _COUNT
  assert not creating.exists()
  # The shards done before the kill were kept, not written again.
  assert {n: (dest / n).stat().st_ino for n in kept} == kept
  packed, idx = (_read(f"packed:{dest}", "all"),
                 _read(f"idx:{mnist_dir}", f"test[:{_COUNT}]"))
  np.testing.assert_array_equal(packed["image"], idx["image"])
  np.testing.assert_array_equal(packed["label"], idx["label"])


@pytest.mark.slow
def test_bad_input_is_one_error_line_and_writes_nothing(mnist_dir, tmp_path):
  code, _, err = run_command(
      sys.executable, "-m", "trainer.data", "create",
      f"--source=idx:{mnist_dir}", "--split=test[:10]",
      f"--dest={tmp_path / 'digits'}", "--resize_filter=nearest")
  assert code == 1, err[-3000:]
  errors = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, err[-3000:]
  assert "unknown resize filter 'nearest'" in errors[0]
  assert "bicubic, bilinear, box, lanczos" in errors[0]
  assert "Traceback" not in err
  assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_inspect_writes_its_grid_to_the_temporary_directory_and_says_where(
    mnist_dir, tmp_path):
  dest = tmp_path / "digits"
  packed.create(packed.Settings(source=f"idx:{mnist_dir}", split="test[:20]",
                                shard_size=8), str(dest), workers=1)
  dataset = {p.name: p.read_bytes() for p in dest.iterdir()}
  cwd, temp = tmp_path / "cwd", tmp_path / "temp"
  cwd.mkdir()
  temp.mkdir()

  process = subprocess.run(
      [sys.executable, "-m", "trainer.data", "inspect", str(dest)],
      cwd=cwd, env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TMPDIR=str(temp)),
      capture_output=True, text=True, timeout=PROCESS_TIMEOUT_SECONDS,
      check=False)

  assert process.returncode == 0, process.stderr[-3000:]
  said, _, metadata = process.stdout.partition("\n")
  grid = temp / "digits_first.png"
  assert said == f"grid of the first images: {grid}"
  assert json.loads(metadata)["count"] == 20
  assert tf.io.decode_png(grid.read_bytes()).shape[-1] == 1
  assert list(cwd.iterdir()) == []
  assert {p.name: p.read_bytes() for p in dest.iterdir()} == dataset
