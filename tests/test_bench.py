"""`python -m trainer.bench`: real processes, real timing, checked for
consistency (not for speed: BENCHMARKS.md has the figures)."""

import json
import os
import sys

import pytest
from tensorboard.backend.event_processing import event_accumulator

from tests.conftest import REPO, run_command

_MNIST_CONFIG = str(REPO / "configs" / "dcgan_mnist.py")


def _bench(mnist_dir, *args: str) -> tuple[int, str, str]:
  return run_command(
      sys.executable, "-m", "trainer.bench", f"--config={_MNIST_CONFIG}",
      f"--config.data.source=idx:{mnist_dir}", "--config.data.split=test",
      "--strategy=one_device", "--steps=10", "--rounds=2", *args)


def _record(code: int, out: str, err: str) -> dict:
  assert code == 0, err[-3000:]
  return json.loads(out.strip().splitlines()[-1])


def test_step_and_tutorial_baseline(mnist_dir):
  record = _record(*_bench(mnist_dir, "--baseline=tutorial",
                           "--config.train.batch_size=64"))
  assert record["strategy"] == "one_device" and record["replicas"] == 1
  assert record["workers"] == 1
  # The oneDNN switch as the package left it (trainer/__init__.py).
  assert record["onednn_opts"] == os.environ.get("TF_ENABLE_ONEDNN_OPTS")
  assert len(record["examples_per_sec_rounds"]) == 2
  assert record["examples_per_sec"] > 0
  # The seed's DCGAN: 4 G and 9 D forward passes per example of a step.
  assert record["flops_per_example"] == pytest.approx(600.3e6, rel=1e-3)
  peak = record["peak_flops_per_sec"]
  assert peak["float32"] > 0 and peak["bfloat16"] > 0
  assert record["peak_fraction"] == pytest.approx(
      record["examples_per_sec"] * record["flops_per_example"]
      / peak["float32"])
  baseline = record["baseline"]
  assert baseline["name"] == "tutorial" and baseline["batch_size"] == 256
  assert baseline["flops_per_example"] == pytest.approx(434.7e6, rel=1e-3)
  assert len(baseline["examples_per_sec_rounds"]) == 2
  assert record["ratio"] == pytest.approx(
      record["examples_per_sec"] / baseline["examples_per_sec"])
  # A fraction of a real peak: the step cannot beat the machine.
  assert 0 < record["peak_fraction"] < 1.2
  assert 0 < baseline["peak_fraction"] < 1.2


def test_pipeline_only(mnist_dir):
  record = _record(*_bench(mnist_dir, "--pipeline_only", "--num_cpu_devices=2",
                           "--strategy=mirrored",
                           "--config.train.n_disc=2"))
  assert record["pipeline_only"] and record["n_disc"] == 2
  assert record["examples_per_sec"] > 0
  assert "flops_per_example" not in record


def test_simultaneous_step_counts_the_tutorials_flops(mnist_dir):
  # Also: the config's thread settings reach TensorFlow's pools, and
  # --scaling times the same step on one device of the process.
  record = _record(*_bench(mnist_dir, "--config.train.simultaneous=True",
                           "--config.train.batch_size=64",
                           "--config.runtime.intra_op_threads=1",
                           "--config.runtime.inter_op_threads=2",
                           "--strategy=mirrored", "--num_cpu_devices=2",
                           "--scaling"))
  assert record["simultaneous"] is True
  assert record["intra_op_threads"] == 1 and record["inter_op_threads"] == 2
  assert record["flops_per_example"] == pytest.approx(434.7e6, rel=1e-3)
  assert record["replicas"] == 2 and "baseline" not in record
  one = record["one_device"]
  assert len(one["examples_per_sec_rounds"]) == 2
  assert one["examples_per_sec"] > 0
  assert one["examples_per_sec"] != record["examples_per_sec"]
  assert record["scaling"] == pytest.approx(
      record["examples_per_sec"] / one["examples_per_sec"])
  assert one["peak_fraction"] == pytest.approx(
      one["examples_per_sec"] * record["flops_per_example"]
      / record["peak_flops_per_sec"]["float32"])


def test_train_the_tutorial_and_evaluate_it_like_ours(mnist_dir, tmp_path):
  record = _record(*_bench(
      mnist_dir, "--baseline=tutorial", "--train_steps=12",
      f"--workdir={tmp_path}", "--config.train.log_every=5",
      "--config.eval.metrics=fid,class_coverage",
      "--config.eval.num_samples=1000", "--config.eval.num_real=1000"))
  assert record["train_steps"] == 12 and record["images"] == 12 * 256
  lines = (tmp_path / "eval" / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 1
  written = json.loads(lines[0])
  assert written["step"] == 12
  assert written["fid"] == pytest.approx(record["metrics"]["fid"])
  # 12 steps of the tutorial make no digits yet: far from the real images.
  assert written["fid"] > 10
  assert written["protocol"]["generator"].startswith("tutorial generator")
  assert written["protocol"]["num_samples"] == 1000
  # Our evaluator's TensorBoard record, with D's histograms.
  tags = _event_tags(tmp_path / "eval")
  assert {"metrics/fid", "d_probability/real",
          "d_probability/fake"} <= tags


def _event_tags(logdir) -> set[str]:
  accumulator = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  return set(accumulator.Tags()["tensors"])


@pytest.mark.parametrize("args, message", [
    (("--steps=5",), "too few to measure"),
    (("--baseline=pytorch",), "unknown baseline 'pytorch'"),
    (("--baseline=tutorial", "--config.model.channels=3"),
     "trains the tutorial's 28x28 grey"),
    (("--strategy=tpu",), "cannot reach a TPU"),
    (("--pipeline_only", "--baseline=tutorial"), "takes no --baseline"),
    (("--pipeline_only", "--scaling", "--strategy=mirrored",
      "--num_cpu_devices=2"), "takes no --baseline or --scaling"),
    (("--scaling",), "it needs --strategy=mirrored with several GPUs"),
    (("--train_steps=5",), "needs --baseline"),
    (("--config.runtime.intra_op_threads=-1",),
     "runtime.intra_op_threads=-1 is out of range"),
    (("--train_steps=-3", "--baseline=tutorial"), "--train_steps=-3 is out"),
    (("--train_steps=5", "--baseline=tutorial",
      "--config.eval.metrics=fid,sharpness"), "unknown metric 'sharpness'"),
])
def test_bad_input_gives_one_error_line(mnist_dir, args, message):
  code, _, err = _bench(mnist_dir, *args)
  assert code == 1, err[-3000:]
  errors = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and message in errors[0], err[-3000:]
  assert "Traceback" not in err
