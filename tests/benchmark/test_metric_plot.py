"""trainer.benchmark.metric_plot: a metric against images seen, as a PNG."""

import io
import json
import sys

from PIL import Image
import pytest

from tests.conftest import run_command
from trainer.benchmark import metric_plot
from trainer.errors import UserError


def _run(workdir, batch: int, fids: dict[int, float]) -> None:
  (workdir / "eval").mkdir(parents=True)
  (workdir / "config.json").write_text(json.dumps(
      {"train": {"batch_size": batch, "n_disc": 1}}))
  lines = [json.dumps({"step": step, "fid": fid, "kid": 0.1})
           for step, fid in fids.items()]
  (workdir / "eval" / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_plots_each_run_against_images_seen(tmp_path):
  _run(tmp_path / "a", 64, {1000: 20.0, 500: 30.0})
  _run(tmp_path / "b", 32, {500: 25.0})
  out = tmp_path / "plot" / "fid.png"
  code, stdout, stderr = run_command(
      sys.executable, "-m", "trainer.benchmark.metric_plot",
      f"--run=a={tmp_path / 'a'}", f"--run=b={tmp_path / 'b'}",
      f"--out={out}")
  assert code == 0, stderr
  record = json.loads(stdout.strip().splitlines()[-1])
  # Sorted by step; images seen = step x batch.
  assert record["curves"] == {"a": [[32000, 30.0], [64000, 20.0]],
                              "b": [[16000, 25.0]]}
  assert Image.open(io.BytesIO(out.read_bytes())).size == (700, 450)


def test_a_missing_metric_names_the_ones_there(tmp_path):
  _run(tmp_path / "a", 64, {500: 30.0})
  with pytest.raises(UserError, match="has no evaluation with 'precision'; "
                     "its metrics: fid, kid"):
    metric_plot.curve(str(tmp_path / "a"), "precision")
  with pytest.raises(UserError, match="has no config.json"):
    metric_plot.curve(str(tmp_path), "fid")
