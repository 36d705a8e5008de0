r"""Which attributes of digits a style mix takes from its second image.

    python -m trainer.apply mix --workdir=<stylegan2 run> --space=w \
        --input=<folder> --mix_input=<folder> --output_dir=/tmp/mix
    python -m trainer.bench.mix_quality --mix=/tmp/mix/mix.npz \
        [--workdir=<stylegan2 run> --layers=0:2,2:4,4:6,6:8]

reads the images of a `mix` (mix.npz: per pair the first image, the
second and the mix, as G draws them; for inverted images the
reconstructions, so that the inversion's error does not count) and prints
one JSON line. With --workdir and --layers, G (at the checkpoint of the
mix's report.json) draws mix.npz's pairs again, mixed at each range of
ws [a, b) in turn, so that one inversion serves every range; the line then
has the figures of each range. For each measure of
trainer/apply/measures.py (ink, slant, width):

  first, second, mixed: its mean over the pairs;
  taken: how much of the gap from the first to the second the mix
    crosses, the least-squares slope of (mixed - first) on (second -
    first) over the pairs: 0 keeps the first's value, 1 takes the
    second's;
  closer_to_second: the share of pairs whose mix is nearer the second's
    value than the first's.

and for the digit the project's MNIST classifier reads, over the pairs
whose two images it reads as different digits (`pairs`): the share whose
mix it reads as the first's digit, and as the second's.
"""

import json
import os

from trainer import cli  # pylint: disable=g-bad-import-order  (sets TF's log level first)
from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from trainer.apply import directions as directions_lib
from trainer.apply import measures
from trainer.apply import run as run_lib
from trainer import distribute
from trainer.errors import UserError

# --workdir (trainer/cli.py), with --layers: the run of the mix, whose G
# (at the checkpoint of the mix's report.json) draws its pairs again.
_MIX = flags.DEFINE_string("mix", None, "mix.npz of trainer.apply mix.")
_LAYERS = flags.DEFINE_list(
    "layers", [], "Ranges a:b of ws to take from the second of each pair "
    "in turn, as trainer.apply mix --layers; empty: the mix as it is.")

# What mix.npz holds: per pair, images [N, H, W, C] and ws
# [N, num_ws, w_dim].
_IMAGES = ("first_images", "second_images", "images")
_WS = ("first_ws", "second_ws")


def _load(path: str) -> dict[str, np.ndarray]:
  """mix.npz's images (float32) and ws."""
  if not tf.io.gfile.exists(path):
    raise UserError(f"--mix={path} does not exist; give the mix.npz that "
                    "python -m trainer.apply mix writes")
  try:
    with np.load(path) as data:
      arrays = {name: data[name].astype(np.float32)
                for name in _IMAGES + _WS}
  except (OSError, ValueError, KeyError) as e:
    raise UserError(f"--mix={path} is not a mix.npz with "
                    f"{', '.join(_IMAGES + _WS)} ({e})") from None
  if any(arrays[name].ndim != 4 for name in _IMAGES):
    raise UserError(f"--mix={path} holds images of shape "
                    f"{arrays['images'].shape}; a mix's are [N, H, W, C]")
  return arrays


def remixed(mix: dict[str, np.ndarray], run: run_lib.TrainedRun,
            strategy: tf.distribute.Strategy,
            specs: list[str]) -> dict[str, np.ndarray]:
  """The mix's pairs drawn by the run's G_ema mixed at each range of ws
  a:b (`specs`): {spec: images [N, H, W, C]}, with G's fixed noise as
  trainer.apply mix draws them.

  Raises:
    UserError: a G without a mapping network, ws of another shape than
      the run's, or a range out of the run's ws.
  """
  split = run.split
  family = run.config.model.architecture
  if not split.has_mapping:
    raise UserError(f"the run holds a {family}, which has no mapping "
                    "network: a mix's ws are a StyleGAN2's")
  first, second = mix["first_ws"], mix["second_ws"]
  shape = (split.num_ws, int(split.w_avg.shape[0]))
  if first.shape[1:] != shape:
    raise UserError(f"the mix's ws are [N, {first.shape[1]}, "
                    f"{first.shape[2]}] and this run's G takes "
                    f"[N, {shape[0]}, {shape[1]}]: give the run of the mix")
  images = {}
  for spec in specs:
    layers = directions_lib.layers_of(spec, split, family)
    images[spec] = distribute.map_rows(
        strategy, lambda a, b, layers=layers: split.render(
            split.mix(a, b, layers), "w+", None), first, second)
  return images


def _run_of(mix_path: str, workdir: str,
            strategy: tf.distribute.Strategy) -> run_lib.TrainedRun:
  """The run at the checkpoint that the mix's report.json names."""
  report = os.path.join(os.path.dirname(mix_path), "report.json")
  try:
    with tf.io.gfile.GFile(report) as f:
      checkpoint = json.load(f)["checkpoint"]
  except (tf.errors.OpError, ValueError, KeyError) as e:
    raise UserError(f"{report}, which names the checkpoint of the mix, "
                    f"cannot be read ({e})") from None
  return run_lib.load(workdir, strategy, checkpoint)


def _taken(first: np.ndarray, second: np.ndarray,
           mixed: np.ndarray) -> float:
  """The slope of (mixed - first) on (second - first), values [N] each."""
  gap = second - first
  return float(np.sum((mixed - first) * gap) / max(np.sum(gap * gap),
                                                   1e-12))


def quality(first: np.ndarray, second: np.ndarray,
            mixed: np.ndarray) -> dict:
  """The figures of the module docstring, for images [N, H, W, C] each."""
  result = {"pairs": int(len(first))}
  for name in measures.MEASURES.names():
    a, b, m = measures.measured(name, np.stack([first, second, mixed]))
    result[name] = {
        "first": float(np.mean(a)), "second": float(np.mean(b)),
        "mixed": float(np.mean(m)), "taken": _taken(a, b, m),
        "closer_to_second": float(np.mean(np.abs(m - b) < np.abs(m - a)))}
  a, b, m = measures.digits(np.stack([first, second, mixed]))
  differ = a != b
  result["digit"] = {
      "pairs": int(np.sum(differ)),
      "of_first": float(np.mean(m[differ] == a[differ])) if differ.any()
                  else None,
      "of_second": float(np.mean(m[differ] == b[differ])) if differ.any()
                   else None}
  return result


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  with cli.errors_as_messages():
    if not _MIX.value:
      raise UserError("--mix is required: the mix.npz that python -m "
                      "trainer.apply mix writes")
    workdir = flags.FLAGS["workdir"].present
    if workdir != bool(_LAYERS.value):
      raise UserError("--workdir and --layers go together: the run that "
                      "draws the mix's pairs again, at each range of ws")
    mix = _load(_MIX.value)
    first, second = mix["first_images"], mix["second_images"]
    if _LAYERS.value:
      strategy = cli.create_strategy()
      images = remixed(mix, _run_of(_MIX.value, cli.workdir(), strategy),
                       strategy, _LAYERS.value)
      result = {spec: quality(first, second, mixed)
                for spec, mixed in images.items()}
    else:
      result = quality(first, second, mix["images"])
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
