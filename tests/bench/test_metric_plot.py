"""trainer.bench.metric_plot: a metric against images seen or seconds,
as a PNG."""

import io
import json
import os
import sys
import time

from PIL import Image
import pytest
import tensorflow as tf

from tests.conftest import run_command
from trainer.bench import metric_plot
from trainer.errors import UserError


def _run(workdir, batch: int, fids: dict[int, float]) -> None:
  (workdir / "eval").mkdir(parents=True)
  (workdir / "config.json").write_text(json.dumps(
      {"train": {"batch_size": batch, "n_disc": 1}}))
  lines = [json.dumps({"step": step, "fid": fid, "kid": 0.1})
           for step, fid in fids.items()]
  (workdir / "eval" / "metrics.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_plots_each_run_against_images_seen(tmp_path):
  _run(tmp_path / "a", 64, {1000: 20.0, 500: 30.0})
  _run(tmp_path / "b", 32, {500: 25.0})
  out = tmp_path / "plot" / "fid.png"
  code, stdout, stderr = run_command(
      sys.executable, "-m", "trainer.bench.metric_plot",
      f"--run=a={tmp_path / 'a'}", f"--run=b={tmp_path / 'b'}",
      f"--out={out}", "--y=log")
  assert code == 0, stderr
  record = json.loads(stdout.strip().splitlines()[-1])
  # Sorted by step; images seen = step x batch.
  assert record["curves"] == {"a": [[32000, 30.0], [64000, 20.0]],
                              "b": [[16000, 25.0]]}
  assert record["y"] == "log"
  assert Image.open(io.BytesIO(out.read_bytes())).size == (700, 450)


def test_seeds_of_one_setup_share_a_colour_and_log_needs_positive_values():
  curves = {"dcgan/seed0": [(1, 30.0), (2, 8.0)],
            "stylegan2/seed0": [(1, 300.0)],
            "dcgan/seed1": [(1, 28.0), (2, 8.5)],
            "r3gan": [(1, 250.0)]}
  axes = metric_plot.figure(curves, "fid", "seconds", "log").axes[0]
  assert axes.get_yscale() == "log"
  lines = {line.get_label(): line for line in axes.get_lines()}
  assert set(lines) == set(curves)
  colour = {label: line.get_color() for label, line in lines.items()}
  style = {label: line.get_linestyle() for label, line in lines.items()}
  assert colour["dcgan/seed0"] == colour["dcgan/seed1"]
  assert style["dcgan/seed0"] != style["dcgan/seed1"]
  assert len({colour["dcgan/seed0"], colour["stylegan2/seed0"],
              colour["r3gan"]}) == 3
  assert list(lines["dcgan/seed1"].get_ydata()) == [28.0, 8.5]
  assert metric_plot.figure(curves, "fid").axes[0].get_yscale() == "linear"

  # A value at or below 0 has no place on a log axis: one clear error.
  with pytest.raises(UserError, match="--y=log needs values above 0; run "
                     "'b' has kid 0: use --y=linear"):
    metric_plot.figure({"a": [(1, 0.5)], "b": [(1, 0.2), (2, 0.0)]}, "kid",
                       y="log")


def test_a_missing_metric_names_the_ones_there(tmp_path):
  _run(tmp_path / "a", 64, {500: 30.0})
  with pytest.raises(UserError, match="has no evaluation with 'precision'; "
                     "its metrics: fid, kid"):
    metric_plot.curve(str(tmp_path / "a"), "precision")
  with pytest.raises(UserError, match="has no config.json"):
    metric_plot.curve(str(tmp_path), "fid")


@pytest.mark.slow
def test_seconds_run_from_the_training_log_to_each_checkpoint(tmp_path):
  """--x=seconds: from the first event of train/ to when each evaluated
  checkpoint's index file was written."""
  workdir = tmp_path / "a"
  _run(workdir, 64, {0: 50.0, 200: 30.0, 400: 20.0})
  records = [json.loads(line) for line in
             (workdir / "eval" / "metrics.jsonl").read_text().splitlines()]
  # The untrained G's record (train.eval_at_start) has no checkpoint.
  lines = [json.dumps({**r, "checkpoint": f"/elsewhere/ckpt-{r['step']}"
                       if r["step"] else ""}) for r in records]
  (workdir / "eval" / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  before = time.time()
  writer = tf.summary.create_file_writer(str(workdir / "train"))
  writer.flush()
  after = time.time()
  (workdir / "checkpoints").mkdir()
  for step, offset in ((200, 30.0), (400, 90.0)):
    index = workdir / "checkpoints" / f"ckpt-{step}.index"
    index.write_bytes(b"")
    os.utime(index, (before + offset, before + offset))
  points = metric_plot.curve(str(workdir), "fid", "seconds")
  assert [value for _, value in points] == [50.0, 30.0, 20.0]
  assert points[0][0] == 0.0
  # Both moments are whole seconds (the log's first event, a local file's
  # mtime through tf.io.gfile), so each x may be off by up to one second.
  slack = after - before + 1.1
  assert points[1][0] == pytest.approx(30.0, abs=slack)
  assert points[2][0] == pytest.approx(90.0, abs=slack)

  out = tmp_path / "fid.png"
  code, stdout, stderr = run_command(
      sys.executable, "-m", "trainer.bench.metric_plot", "--x=seconds",
      f"--run=a={workdir}", f"--out={out}")
  assert code == 0, stderr
  assert json.loads(stdout.strip().splitlines()[-1])["x"] == "seconds"

  # A checkpoint that is gone, and a run without its training log.
  (workdir / "checkpoints" / "ckpt-400.index").unlink()
  with pytest.raises(UserError, match="ckpt-400.index is missing"):
    metric_plot.curve(str(workdir), "fid", "seconds")
  _run(tmp_path / "b", 64, {200: 30.0})
  with pytest.raises(UserError, match="has no TensorBoard events"):
    metric_plot.curve(str(tmp_path / "b"), "fid", "seconds")
