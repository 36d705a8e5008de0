"""What the tasks of trainer.apply share: their options and helpers.

`Options` holds what the user asked for (the flags of `python -m
trainer.apply`). The helpers check the options against G's latent split,
draw latents and labels, invert G and write the pictures and the
`report.json` that every task leaves in its output directory. The tasks
are in trainer/apply/tasks.py (the registry, TASKS) and
trainer/apply/latent_tasks.py (directions and edit).
"""

import dataclasses
import json
import os

from absl import logging
import numpy as np
import tensorflow as tf

from trainer.apply import directions as directions_lib
from trainer.apply import images as images_lib
from trainer.apply import inversion as inversion_lib
from trainer.apply.run import TrainedRun
from trainer.errors import UserError
from trainer import files
from trainer import models
from trainer.models import latent as latent_lib

# Images per row of the grid pictures.
_GRID_COLUMNS = 8


# sample and interpolate: the noise inputs of StyleGAN2's layers, as the
# reference's generate.py takes them. random: drawn per image from its z
# (G as it trains); const: one fixed draw per layer (each image a function
# of its w alone); none: no noise.
NOISE_MODES = ("random", "const", "none")


@dataclasses.dataclass(frozen=True)
class Options:
  """What the user asked for (flags of trainer.apply); see README."""
  output_dir: str
  num: int = 16
  seed: int = 0
  label: int = -1  # a class for conditional models; -1: from data, or all
  truncation: float = 0.0  # of z; 0: none
  psi: float = 1.0  # truncation of w toward w_avg; 1: none
  truncation_cutoff: int | None = None  # truncate ws[:cutoff]; None: all
  noise_mode: str = "random"  # StyleGAN2's noise inputs (NOISE_MODES)
  cutoff: int | None = None  # mix: ws[:cutoff] from the first latent
  mix_input: str = ""  # mix: the image (or folder) whose ws are taken
  mix_label: int = -1  # mix: the class of --mix_input; -1: --label's
  frames: int = 10
  input: str = ""  # a PNG; "" takes images from the data
  source: str = ""  # "" means the run's data.source
  split: str = ""  # "" means the run's data.split
  first: int = 0  # index of the first image taken from the data
  mask: str = "center"
  factor: int = 4
  resize: bool = False
  inversion: inversion_lib.Settings = inversion_lib.Settings()
  directions: directions_lib.Settings = directions_lib.Settings()

  def __post_init__(self):
    for name, minimum in (("num", 1), ("frames", 2), ("truncation", 0)):
      if getattr(self, name) < minimum:
        raise UserError(f"--{name}={getattr(self, name)} is out of range; "
                        f"it must be >= {minimum}")
    if self.noise_mode not in NOISE_MODES:
      raise UserError(f"--noise_mode={self.noise_mode!r} is not one; valid: "
                      f"{', '.join(NOISE_MODES)}")
    if not 0 <= self.psi <= 1:
      raise UserError(f"--psi={self.psi} is out of range; it must be in "
                      "[0, 1] (1: no truncation, 0: every image is the "
                      "average w's)")
    self.inversion.check()
    self.directions.check()

  @property
  def inversion_settings(self) -> inversion_lib.Settings:
    """The inversion's settings, its random starts drawn from --seed."""
    return dataclasses.replace(self.inversion, seed=self.seed)


def split(run: TrainedRun, options: Options, *,
          mixing: bool = False) -> latent_lib.LatentSplit:
  """G_ema's latent split, once the options it cannot take are refused.

  Truncation toward w_avg, --space=w and w+, and mixing (`mixing`) need a
  mapping network; the cutoffs count its ws.
  """
  split, family = run.split, run.config.model.architecture
  space = options.inversion.space
  if not split.has_mapping:
    none = f"model.architecture={family} has no mapping network"
    if mixing:
      raise UserError(f"mix takes some layers' styles (ws) of one latent "
                      f"into another's, and {none}; train one with "
                      "configs/stylegan2.py")
    if options.psi != 1:
      raise UserError(f"--psi={options.psi} truncates w toward the average "
                      f"w, and {none}: its --psi must be 1 (--truncation "
                      "truncates z instead)")
    if space != "z":
      raise UserError(f"--space={space} needs a mapping network, and {none};"
                      " valid for it: z")
    if options.noise_mode != "random":
      raise UserError(f"--noise_mode={options.noise_mode} sets StyleGAN2's "
                      f"noise inputs, and model.architecture={family} has "
                      "none: leave it out")
  for name, value, high in (
      ("truncation_cutoff", options.truncation_cutoff, split.num_ws),
      ("cutoff", options.cutoff, split.num_ws - 1)):
    if value is not None and not 1 <= value <= high:
      if not split.has_mapping:
        raise UserError(f"--{name}={value} counts the ws of a mapping "
                        f"network, and model.architecture={family} has "
                        "none; leave it out")
      raise UserError(f"--{name}={value} is out of range; this model has "
                      f"{split.num_ws} ws: it must be in [1, {high}]")
  return split


def input_labels(run: TrainedRun, count: int, label: int,
                 images: str = "--input") -> np.ndarray | None:
  """The labels of `count` real images (`images` names their flags):
  --label, which a class-conditional model needs, as an image carries no
  class."""
  if run.num_classes and label < 0:
    raise UserError(
        f"this model is class-conditional: pass the class of {images} with "
        f"--label=<0 to {run.num_classes - 1}>")
  return labels_for(run, count, label)


def labels_for(run: TrainedRun, count: int, label: int,
               flag: str = "--label") -> np.ndarray | None:
  """Labels of generated images: --label (or `flag`'s), else every class in
  turn."""
  if not run.num_classes:
    if label >= 0:
      raise UserError(f"{flag}={label} is for class-conditional models; "
                      "this run's model.num_classes is 0")
    return None
  if label >= run.num_classes:
    raise UserError(f"{flag}={label} is out of range; this model draws "
                    f"classes 0 to {run.num_classes - 1}")
  if label >= 0:
    return np.full(count, label, np.int32)
  return models.balanced_labels(count, run.num_classes)


def latents(count: int, latent_dim: int, seed: int,
            truncation: float) -> np.ndarray:
  """z ~ N(0, I) [count, latent_dim]; with truncation t > 0, every value
  beyond +-t is redrawn until it falls inside (the truncation trick)."""
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((count, latent_dim))
  if truncation:
    outside = np.abs(z) > truncation
    while outside.any():
      z[outside] = rng.standard_normal(outside.sum())
      outside = np.abs(z) > truncation
  return z.astype(np.float32)


def write_report(options: Options, report: dict) -> dict:
  """Writes report.json to --output_dir; returns the report."""
  files.write_atomically(os.path.join(options.output_dir, "report.json"),
                         json.dumps(report, indent=2, sort_keys=True) + "\n")
  return report


def write_grid(options: Options, name: str, images: np.ndarray,
               columns: int = _GRID_COLUMNS) -> str:
  """Writes images [N, H, W, C] as one grid picture `name`; its path."""
  path = os.path.join(options.output_dir, name)
  images_lib.write_png(path, images_lib.grid(images,
                                             min(columns, len(images))))
  return path


def report_header(run: TrainedRun, options: Options) -> dict:
  """The fields every task's report starts with."""
  return {"checkpoint": run.checkpoint, "step": run.step,
          "generator": "generator_ema", "seed": options.seed,
          "output_dir": options.output_dir}


def invert(run: TrainedRun, strategy: tf.distribute.Strategy,
           options: Options, observed: np.ndarray, weight: np.ndarray,
           operator: inversion_lib.Operator,
           labels: np.ndarray | None) -> inversion_lib.Result:
  """Inverts G_ema on `observed` (trainer/apply/inversion.py) with the
  options' inversion settings."""
  logging.info("Inverting G in %s for %d images: %d starts x %d steps each",
               options.inversion.space, len(observed),
               options.inversion.restarts, options.inversion.steps)
  return inversion_lib.invert(
      strategy, run.split, observed, weight, operator=operator,
      labels=labels, latent_dim=run.config.model.latent_dim,
      settings=options.inversion_settings)


def inversion_report(result: inversion_lib.Result, options: Options) -> dict:
  """The inversion's part of a report: its settings and errors."""
  return {"settings": dataclasses.asdict(options.inversion_settings),
          "initial_error": result.initial_error.tolist(),
          "final_error": result.final_error.tolist()}
