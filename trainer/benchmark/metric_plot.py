r"""An evaluation metric against images seen, for several runs, as one PNG.

    python -m trainer.benchmark.metric_plot --metric=fid --out=fid.png \
        --run=none=runs/limited_none --run=ada=runs/limited_ada

Each run is `label=workdir` of a `trainer.main` run that evaluated during
training (`train.eval_every`): its `eval/metrics.jsonl` gives the metric at
each evaluated step, its `config.json` the real images D sees per step
(`train.batch_size x train.n_disc`). Prints one JSON line: per run, the
(images seen, value) points.
"""

import io
import json
import os
import sys

from absl import app
from absl import flags
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import tensorflow as tf

from trainer import config as config_lib
from trainer import evaluation
from trainer.errors import UserError

_RUNS = flags.DEFINE_multi_string(
    "run", [], "label=workdir of a run with eval/metrics.jsonl; repeat.")
_METRIC = flags.DEFINE_string("metric", "fid", "The metric key to plot.")
_OUT = flags.DEFINE_string("out", "", "Where to write the PNG.")


def curve(workdir: str, metric: str) -> list[tuple[int, float]]:
  """[(images seen, value)] of a run's evaluations, by step.

  Raises:
    UserError: no config.json, no evaluations, or none with `metric`.
  """
  saved = config_lib.read_saved(workdir)
  if saved is None:
    raise UserError(f"{workdir} has no config.json: pass the --workdir of a "
                    "python -m trainer.main run")
  train = saved["train"]
  per_step = train["batch_size"] * train.get("n_disc", 1)
  records = evaluation.read_records(workdir)
  points = sorted((r["step"] * per_step, float(r[metric]))
                  for r in records if metric in r)
  if not points:
    found = sorted({k for r in records for k in r
                    if isinstance(r[k], float)})
    raise UserError(f"{workdir} has no evaluation with {metric!r}; its "
                    f"metrics: {', '.join(found) or 'none'}")
  return points


def plot(curves: dict[str, list[tuple[int, float]]], metric: str) -> bytes:
  """A PNG of each run's metric against images seen."""
  figure = Figure(figsize=(7.0, 4.5), dpi=100)
  axes = figure.add_subplot()
  for label, points in curves.items():
    axes.plot([x / 1000 for x, _ in points], [y for _, y in points],
              marker="o", label=label)
  axes.set_xlabel("real images seen (thousands)")
  axes.set_ylabel(metric)
  axes.grid(alpha=0.3)
  axes.legend()
  buffer = io.BytesIO()
  FigureCanvasAgg(figure).print_png(buffer)
  return buffer.getvalue()


def _parse_runs(runs: list[str]) -> dict[str, str]:
  parsed = {}
  for run in runs:
    label, sep, workdir = run.partition("=")
    if not sep or not label or not workdir:
      raise UserError(f"--run={run!r} is not label=workdir")
    parsed[label] = workdir
  if not parsed:
    raise UserError("give at least one --run=label=workdir")
  return parsed


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    runs = _parse_runs(_RUNS.value)
    if not _OUT.value:
      raise UserError("--out is required: the PNG to write")
    curves = {label: curve(workdir, _METRIC.value)
              for label, workdir in runs.items()}
    directory = os.path.dirname(_OUT.value)
    if directory:
      tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(_OUT.value, "wb") as f:
      f.write(plot(curves, _METRIC.value))
  except UserError as e:
    sys.exit(f"error: {e}")
  print(json.dumps({"metric": _METRIC.value, "out": _OUT.value,
                    "curves": curves}))


if __name__ == "__main__":
  app.run(main)
