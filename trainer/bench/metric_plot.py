r"""An evaluation metric against images seen or seconds, for several runs,
as one PNG.

    python -m trainer.bench.metric_plot --metric=fid --out=fid.png \
        --run=none=runs/limited_none --run=ada=runs/limited_ada

Each run is `label=workdir` of a `trainer.main` run whose checkpoints were
evaluated (`train.eval_every`, or `trainer.evaluate` afterwards): its
`eval/metrics.jsonl` gives the metric at each evaluated step.

--x=images (the default): its `config.json` gives the real images D sees per
step (`train.batch_size x train.n_disc`).
--x=seconds: the wall-clock seconds from the run's start (the first event of
its `train/` TensorBoard log) to the moment each evaluated checkpoint was
written (its index file's modification time), for comparing runs given the
same time. Evaluations made during training are inside that time; a run that
was stopped and resumed counts the pause as well. Both moments come in whole
seconds (TensorFlow writes the log's first event and reports a local file's
modification time to the second), so each x is good to about a second.
The untrained G's evaluation (`train.eval_at_start`, step 0) is at 0
seconds.

Runs of one setup with other seeds: labels that share the part before a `/`
(`dcgan/seed0`, `dcgan/seed1`) share a colour, one line style per run.
--y=log for a metric whose runs lie orders of magnitude apart (FID 8 and 300).

Prints one JSON line: per run, the (x, value) points.
"""

import io
import json
import os
import sys

from absl import app
from absl import flags
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tensorboard.backend.event_processing import event_file_loader
import tensorflow as tf

from trainer import config as config_lib
from trainer.errors import UserError
from trainer.metrics import evaluator as evaluator_lib

_RUNS = flags.DEFINE_multi_string(
    "run", [], "label=workdir of a run with eval/metrics.jsonl; repeat.")
_METRIC = flags.DEFINE_string("metric", "fid", "The metric key to plot.")
_OUT = flags.DEFINE_string("out", "", "Where to write the PNG.")
_X = flags.DEFINE_enum(
    "x", "images", ["images", "seconds"],
    "The horizontal axis: real images seen, or wall-clock seconds from the "
    "run's start to each checkpoint.")

_Y = flags.DEFINE_enum(
    "y", "linear", ["linear", "log"],
    "The vertical axis' scale; log needs every value above 0.")

_X_LABELS = {"images": "real images seen (thousands)",
             "seconds": "wall-clock seconds of training"}


def curve(workdir: str, metric: str,
          x: str = "images") -> list[tuple[float, float]]:
  """[(x, value)] of a run's evaluations, by step; x as --x says.

  Raises:
    UserError: no config.json, no evaluations, or none with `metric`; for
      seconds, no training log or an evaluated checkpoint that is gone.
  """
  saved = config_lib.read_saved(workdir)
  if saved is None:
    raise UserError(f"{workdir} has no config.json: pass the --workdir of a "
                    "python -m trainer.main run")
  evaluated = evaluator_lib.read_records(workdir)
  records = [r for r in evaluated if metric in r]
  if not records:
    found = sorted({k for r in evaluated for k in r
                    if isinstance(r[k], float)})
    raise UserError(f"{workdir} has no evaluation with {metric!r}; its "
                    f"metrics: {', '.join(found) or 'none'}")
  if x == "seconds":
    start = _start_time(workdir)
    # The untrained G's record (train.eval_at_start) is the start.
    return sorted((0.0 if r["step"] == 0 else
                   round(_written_at(workdir, r) - start, 1), float(r[metric]))
                  for r in records)
  train = saved["train"]
  per_step = train["batch_size"] * train.get("n_disc", 1)
  return sorted((r["step"] * per_step, float(r[metric])) for r in records)


def _start_time(workdir: str) -> float:
  """The wall time of the first event of the run's training log."""
  files = tf.io.gfile.glob(os.path.join(workdir, "train",
                                        "events.out.tfevents.*"))
  starts = []
  for path in files:
    for event in event_file_loader.EventFileLoader(path).Load():
      starts.append(event.wall_time)
      break
  if not starts:
    raise UserError(f"{workdir}/train has no TensorBoard events: --x=seconds "
                    "needs the training log of the run")
  return min(starts)


def _written_at(workdir: str, record: dict) -> float:
  """When the record's checkpoint was written (its index file's mtime)."""
  name = os.path.basename(record.get("checkpoint", ""))
  index = os.path.join(workdir, "checkpoints", f"{name}.index")
  try:
    return tf.io.gfile.stat(index).mtime_nsec / 1e9
  except tf.errors.NotFoundError:
    raise UserError(
        f"{index} is missing: --x=seconds reads when each evaluated "
        f"checkpoint was written (step {record['step']}); keep them "
        "(train.keep_checkpoints) until they are plotted") from None


_LINE_STYLES = ("-", "--", ":", "-.")


def styles(labels: list[str]) -> dict[str, tuple[str, str]]:
  """{label: (colour, line style)}: one colour per group, the part of a label
  before its first `/` (the whole label without one), in order of first
  appearance; within a group, one line style per run."""
  colours = {}
  counts = {}
  result = {}
  for label in labels:
    group = label.split("/", 1)[0]
    colours.setdefault(group, f"C{len(colours) % 10}")
    count = counts.get(group, 0)
    counts[group] = count + 1
    result[label] = (colours[group], _LINE_STYLES[count % len(_LINE_STYLES)])
  return result


def figure(curves: dict[str, list[tuple[float, float]]], metric: str,
           x: str = "images", y: str = "linear") -> Figure:
  """Each run's metric against x (images seen or seconds), y linear or log.

  Raises:
    UserError: y is log and a run has a value at or below 0.
  """
  if y == "log":
    for label, points in curves.items():
      low = min((b for _, b in points), default=1.0)
      if low <= 0:
        raise UserError(f"--y=log needs values above 0; run {label!r} has "
                        f"{metric} {low:g}: use --y=linear")
  result = Figure(figsize=(7.0, 4.5), dpi=100)
  axes = result.add_subplot()
  scale = 1000 if x == "images" else 1
  for label, (colour, line_style) in styles(list(curves)).items():
    points = curves[label]
    axes.plot([a / scale for a, _ in points], [b for _, b in points],
              marker="o", color=colour, linestyle=line_style, label=label)
  axes.set_xlabel(_X_LABELS[x])
  axes.set_ylabel(metric)
  axes.set_yscale(y)
  axes.grid(alpha=0.3, which="both" if y == "log" else "major")
  axes.legend()
  return result


def plot(curves: dict[str, list[tuple[float, float]]], metric: str,
         x: str = "images", y: str = "linear") -> bytes:
  """A PNG of `figure`."""
  buffer = io.BytesIO()
  FigureCanvasAgg(figure(curves, metric, x, y)).print_png(buffer)
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
    curves = {label: curve(workdir, _METRIC.value, _X.value)
              for label, workdir in runs.items()}
    png = plot(curves, _METRIC.value, _X.value, _Y.value)
    directory = os.path.dirname(_OUT.value)
    if directory:
      tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(_OUT.value, "wb") as f:
      f.write(png)
  except UserError as e:
    sys.exit(f"error: {e}")
  print(json.dumps({"metric": _METRIC.value, "x": _X.value, "y": _Y.value,
                    "out": _OUT.value, "curves": curves}))


if __name__ == "__main__":
  app.run(main)
