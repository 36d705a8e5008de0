"""Loss-curve comparison on real TensorBoard logs, written by our writer."""

import json
import sys

import pytest

from tests.conftest import run_command
from trainer.bench import curves
from trainer import summaries


def _run(workdir, d_losses, g_losses, every=25):
  writer = summaries.Writer(str(workdir / "train"))
  for i, (d, g) in enumerate(zip(d_losses, g_losses)):
    writer.scalars((i + 1) * every, {"losses/d": d, "losses/g": g})
  writer.flush()
  return str(workdir)


@pytest.fixture
def runs(tmp_path):
  base = [1.4, 1.3, 1.2, 1.25]
  return {
      "reference": _run(tmp_path / "a", base, [0.7, 0.8, 0.9, 0.85]),
      "close": _run(tmp_path / "b", [b + 0.01 for b in base],
                    [0.71, 0.79, 0.91, 0.85]),
      "noise": _run(tmp_path / "c", [b - 0.05 for b in base],
                    [0.75, 0.75, 0.95, 0.8]),
      "far": _run(tmp_path / "d", [b + 0.3 for b in base],
                  [0.7, 0.8, 0.9, 0.85]),
  }


def test_read_back_what_training_logged(runs):
  assert curves.read_curve(runs["reference"], "losses/d") == pytest.approx(
      {25: 1.4, 50: 1.3, 75: 1.2, 100: 1.25})


def test_a_close_run_is_within_noise_and_a_far_one_is_not(runs):
  close = curves.compare(runs["reference"], runs["close"], runs["noise"])
  assert close["within_noise"]
  assert close["tags"]["losses/d"]["candidate_distance"] == pytest.approx(0.01)
  assert close["tags"]["losses/d"]["control_distance"] == pytest.approx(0.05)
  assert close["tags"]["losses/d"]["steps"] == 4
  far = curves.compare(runs["reference"], runs["far"], runs["noise"])
  assert not far["within_noise"]
  assert far["tags"]["losses/d"]["candidate_distance"] == pytest.approx(0.3)


@pytest.mark.slow
def test_command_line_and_bad_input(runs, tmp_path):
  code, out, err = run_command(
      sys.executable, "-m", "trainer.bench.curves",
      f"--reference={runs['reference']}", f"--candidate={runs['close']}",
      f"--control={runs['noise']}")
  assert code == 0, err[-2000:]
  assert json.loads(out.strip().splitlines()[-1])["within_noise"] is True
  code, _, err = run_command(
      sys.executable, "-m", "trainer.bench.curves",
      f"--reference={runs['reference']}", f"--candidate={tmp_path / 'none'}",
      f"--control={runs['noise']}")
  assert code == 1
  errors = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "has no training log" in errors[0], err
  assert "Traceback" not in err
