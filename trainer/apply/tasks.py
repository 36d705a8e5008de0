"""The tasks of `python -m trainer.apply <task>`, looked up by name.

Every task takes a trained run (G_ema at one checkpoint), writes its pictures
and a `report.json` to the output directory, and returns the report.

- sample:      N images from noise (optionally truncated), a grid and a .npz.
- interpolate: spherical interpolation between random latents: grid and GIF.
- inpaint:     fill a masked hole by inverting G on the known pixels.
- superres:    raise the resolution 2x or 4x by inverting G through a
               downsampling.
- transfer:    a class-conditional G: invert an image under its class, then
               redraw it as every class with the same latent (the style).
- mix:         style mixing (a G with a mapping network): some layers' ws
               of one latent in another; of two inverted images, attribute
               transfer (the fine styles of one, the coarse of the other).
- directions:  directions in w (or z) that change one thing, by closed-form
               factorization, PCA or a boundary between labelled latents
               (trainer/apply/directions.py): a .npy, a .json and a grid.
- edit:        sampled or inverted images moved along such a direction.
- export:      a SavedModel of G_ema that runs without this project.

This module holds TASKS and every task but directions and edit, which are
in trainer/apply/latent_tasks.py; what the tasks share (Options, the
checks of the options against G, latents, inversion, the report and its
pictures) is in trainer/apply/common.py.

G samples through its latent split (trainer/models/latent.py): with --psi
< 1 its ws are truncated toward w_avg (a G with a mapping network), and the
inversions search z, w or w+ (--space).

Images come from a PNG (`--input`) or from a data source (the run's own by
default; pass a held-out split to measure). When the true image is known,
the report gives PSNR and SSIM against it, next to a simple baseline.
"""

import dataclasses
import json
import math
import os
from typing import Callable

from absl import logging
import numpy as np
import tensorflow as tf

from trainer.apply import common
from trainer.apply import directions as directions_lib
from trainer.apply import export as export_lib
from trainer.apply import images as images_lib
from trainer.apply import latent_tasks
# NOISE_MODES and Options are re-exported: trainer.apply.tasks.Options.
from trainer.apply.common import NOISE_MODES  # pylint: disable=unused-import
from trainer.apply.common import Options
from trainer.apply.run import TrainedRun
from trainer.data import pipeline
from trainer.data import sources
from trainer import distribute
from trainer.errors import UserError
from trainer import features as features_lib
from trainer import files
from trainer.models import latent as latent_lib
from trainer.registry import Registry

# Rows of the side-by-side comparison pictures.
_COMPARISON_ROWS = 16
# mix's default cutoff: the ws of 4x4 and 8x8, StyleGAN's "coarse" styles.
_COARSE_WS = 4


Task = Callable[[TrainedRun, tf.distribute.Strategy, Options], dict]
TASKS: Registry[Task] = Registry("task", "the task argument")
# The tasks of trainer/apply/latent_tasks.py, registered here with the
# others: trainer/config_reference.py lists a registry as the module that
# makes it leaves it.
TASKS.register("directions")(latent_tasks.directions)
TASKS.register("edit")(latent_tasks.edit)


# ------------------------------------------------------------------ helpers


def _sampler(split: latent_lib.LatentSplit, options: Options) -> Callable:
  """(z, labels=None) -> G's images, ws truncated by --psi, with the
  --noise_mode noise."""
  return lambda z, labels=None: split.generate(
      z, labels, psi=options.psi, cutoff=options.truncation_cutoff,
      noise_mode=options.noise_mode)


def _comparison(*columns: np.ndarray) -> np.ndarray:
  """Per image, one row of its versions: [rows * len(columns), H, W, C]."""
  stacked = np.stack([c[:_COMPARISON_ROWS] for c in columns], axis=1)
  return stacked.reshape((-1,) + stacked.shape[2:])


def _psi(options: Options) -> dict:
  return {"psi": options.psi, "truncation_cutoff": options.truncation_cutoff,
          "noise_mode": options.noise_mode}


def summary(report: dict) -> str:
  """One JSON line for the terminal: where the results are, and the
  headline numbers of the report."""
  line = {k: report[k] for k in ("task", "method", "step", "output_dir",
                                 "target_class_accuracy",
                                 "reconstruction_psnr") if k in report}
  for section in ("quality", "quality_on_hole"):
    if section in report:
      line[section] = {
          name: {"psnr": round(v["psnr"], 2), "ssim": round(v["ssim"], 4)}
          for name, v in report[section].items()}
  if "inversion" in report:
    line["inversion_error"] = {
        "initial": round(float(np.mean(report["inversion"]["initial_error"])),
                         5),
        "final": round(float(np.mean(report["inversion"]["final_error"])), 5)}
  return json.dumps(line)


# ------------------------------------------------------------- the targets


@dataclasses.dataclass(frozen=True)
class Targets:
  """The images a task works on, with what is known about them."""
  images: np.ndarray  # [N, H, W, C] in [-1, 1]
  labels: np.ndarray | None  # int32 [N] for conditional models, else None
  origin: dict  # where they came from, for the report


def load_targets(run: TrainedRun, options: Options, *,
                 size: int | None = None) -> Targets:
  """The images of --input, or --num images of the data from --first.

  Args:
    size: the side the images must have (default the model's); only
      --input images are read at another size (superres's low-resolution).
  """
  if options.input:
    return _input_targets(run, options, size or run.config.model.image_size)
  config, data = run.config, run.config.data
  spec, split = options.source or data.source, options.split or data.split
  source = sources.load(spec, sources.Request(
      split=split, image_size=config.model.image_size,
      # Resized as the run's data were (data.resize), or as --resize asks.
      channels=config.model.channels, resize=options.resize or data.resize,
      tfds_data_dir=data.tfds_data_dir, tfds_download=data.tfds_download))
  last = options.first + options.num
  if options.first < 0 or last > source.num_examples:
    raise UserError(
        f"--first={options.first} --num={options.num} asks for images "
        f"{options.first} to {last - 1}, but {source.description} split "
        f"{split!r} has {source.num_examples} (0 to "
        f"{source.num_examples - 1})")
  if run.num_classes:
    sources.check_classes(source, run.num_classes)
  examples = source.read(tf.range(options.first, last, dtype=tf.int64))
  labels = examples["label"].numpy().astype(np.int32)
  if options.label >= 0:
    labels = common.labels_for(run, options.num, options.label)
  return Targets(pipeline.to_unit_range(examples["image"]).numpy(),
                 labels if run.num_classes else None,
                 {"source": source.description, "split": split,
                  "indices": [options.first, last - 1]})


def _input_targets(run: TrainedRun, options: Options, size: int) -> Targets:
  image = images_lib.read_image(options.input, image_size=size,
                                channels=run.config.model.channels,
                                resize=options.resize)
  return Targets(images_lib.from_uint8(image[None]),
                 common.input_labels(run, 1, options.label), {"input": options.input})


def _quality(truth: np.ndarray, candidates: dict[str, np.ndarray],
             region: np.ndarray | None) -> dict:
  """PSNR and SSIM of each candidate against the truth: means and lists."""
  report = {}
  for name, images in candidates.items():
    psnr = images_lib.psnr(images, truth, region)
    ssim = images_lib.ssim(images, truth, region)
    report[name] = {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)),
                    "psnr_per_image": psnr.tolist(),
                    "ssim_per_image": ssim.tolist()}
  return report


# ------------------------------------------------------------------- tasks


@TASKS.register("sample")
def sample(run: TrainedRun, strategy: tf.distribute.Strategy,
           options: Options) -> dict:
  """--num images: images/<i>.png, grid.png and samples.npz (z, labels)."""
  split = common.split(run, options)
  z = common.latents(options.num, run.config.model.latent_dim, options.seed,
                     options.truncation)
  labels = common.labels_for(run, options.num, options.label)
  images = distribute.map_rows(strategy, _sampler(split, options), z, labels)
  for i, image in enumerate(images):
    images_lib.write_png(
        os.path.join(options.output_dir, "images", f"{i:06d}.png"), image)
  common.write_grid(options, "grid.png", images)
  files.write_npz(os.path.join(options.output_dir, "samples.npz"), z=z,
                  images=images,
                  **({} if labels is None else {"labels": labels}))
  return common.write_report(options, {
      **common.report_header(run, options), "task": "sample",
      "num": options.num,
      "truncation": options.truncation, **_psi(options),
      "labels": None if labels is None else labels.tolist()})


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Spherical interpolation of rows z0, z1 [N, D] at times t [T] -> [N, T, D].

  Gaussian latents concentrate near a sphere; a straight line between two of
  them passes through its inside, where G has rarely been trained.
  """
  unit0 = z0 / np.linalg.norm(z0, axis=-1, keepdims=True)
  unit1 = z1 / np.linalg.norm(z1, axis=-1, keepdims=True)
  omega = np.arccos(np.clip(np.sum(unit0 * unit1, -1), -1.0, 1.0))[:, None]
  t = t[None, :]  # [1, T]
  sin = np.sin(omega)
  safe = np.where(sin < 1e-6, 1.0, sin)
  w0 = np.where(sin < 1e-6, 1 - t, np.sin((1 - t) * omega) / safe)
  w1 = np.where(sin < 1e-6, t, np.sin(t * omega) / safe)
  return w0[..., None] * z0[:, None] + w1[..., None] * z1[:, None]


@TASKS.register("interpolate")
def interpolate(run: TrainedRun, strategy: tf.distribute.Strategy,
                options: Options) -> dict:
  """--num paths of --frames steps: grid.png (a path per row) and a GIF."""
  split = common.split(run, options)
  latent_dim = run.config.model.latent_dim
  ends = common.latents(2 * options.num, latent_dim, options.seed,
                        options.truncation)
  path = slerp(ends[:options.num], ends[options.num:],
               np.linspace(0.0, 1.0, options.frames))  # [N, T, D]
  labels = common.labels_for(run, options.num, options.label)
  flat_labels = None if labels is None else np.repeat(labels, options.frames)
  images = distribute.map_rows(
      strategy, _sampler(split, options),
      path.reshape(-1, latent_dim).astype(np.float32), flat_labels)
  common.write_grid(options, "grid.png", images, columns=options.frames)
  by_time = images.reshape((options.num, options.frames) + images.shape[1:])
  columns = math.ceil(math.sqrt(options.num))
  frames = [images_lib.grid(by_time[:, t], columns)
            for t in range(options.frames)]
  # There and back again, so that the loop has no jump.
  frames = np.stack(frames + frames[-2:0:-1])
  scale = max(1, 256 // max(frames.shape[1:3]))
  images_lib.write_gif(os.path.join(options.output_dir, "interpolation.gif"),
                       frames, scale=scale)
  return common.write_report(options, {
      **common.report_header(run, options), "task": "interpolate",
      "paths": options.num,
      "frames": options.frames, "truncation": options.truncation,
      **_psi(options),
      "labels": None if labels is None else labels.tolist()})


@TASKS.register("inpaint")
def inpaint(run: TrainedRun, strategy: tf.distribute.Strategy,
            options: Options) -> dict:
  """Fills the hole of --mask; compares with mean and diffusion fills."""
  common.split(run, options)
  targets = load_targets(run, options)
  truth = targets.images
  mask = images_lib.load_mask(options.mask, count=len(truth),
                              size=run.config.model.image_size,
                              seed=options.seed, resize=options.resize)
  result = common.invert(run, strategy, options, truth, mask, lambda x: x,
                         targets.labels)
  # Known pixels are kept; G's output fills only the hole.
  filled = mask * truth + (1 - mask) * result.images
  baselines = {"mean_fill": images_lib.mean_fill(truth, mask),
               "diffusion_fill": images_lib.diffusion_fill(truth, mask)}
  masked = images_lib.apply_mask(truth, mask)
  for name, images in (("input.png", truth), ("masked.png", masked),
                       ("result.png", filled),
                       ("diffusion_fill.png", baselines["diffusion_fill"])):
    common.write_grid(options, name, images)
  common.write_grid(
      options, "comparison.png",
      _comparison(truth, masked, filled, baselines["diffusion_fill"]),
      columns=4)
  hole = 1 - mask
  return common.write_report(options, {
      **common.report_header(run, options), "task": "inpaint",
      "images": targets.origin,
      "mask": options.mask, "hole_fraction": float(hole.mean()),
      "comparison_columns": ["input", "masked", "gan", "diffusion_fill"],
      # On the hole only: the known pixels are copied by every method.
      "quality_on_hole": _quality(truth, {"gan": filled, **baselines}, hole),
      "inversion": common.inversion_report(result, options)})


@TASKS.register("superres")
def superres(run: TrainedRun, strategy: tf.distribute.Strategy,
             options: Options) -> dict:
  """Raises the resolution --factor times; compares with bicubic."""
  common.split(run, options)
  size = run.config.model.image_size
  if options.factor not in (2, 4) or size % options.factor:
    valid = [f for f in (2, 4) if size % f == 0]
    raise UserError(f"--factor={options.factor} is not valid for "
                    f"{size}x{size} images; valid: "
                    f"{', '.join(map(str, valid))}")
  low_size = size // options.factor
  truth = None
  given = images_lib.image_size(options.input) if options.input else None
  if given not in (None, (size, size), (low_size, low_size)) and (
      not options.resize):
    raise UserError(
        f"{options.input} is {given[1]}x{given[0]}; superres takes a "
        f"{low_size}x{low_size} image to enlarge {options.factor}x, or a "
        f"{size}x{size} one that it first shrinks (to compare the result "
        f"with). Pass --resize to resize it to {low_size}x{low_size}")
  if given not in (None, (size, size)):
    # A low-resolution input: nothing to compare with.
    targets = load_targets(run, options, size=low_size)
    low = targets.images
  else:
    targets = load_targets(run, options)
    truth = targets.images
    low = images_lib.downsample(tf.constant(truth), options.factor).numpy()
  operator = lambda x: images_lib.downsample(x, options.factor)
  weight = np.ones(low.shape[:3] + (1,), np.float32)
  result = common.invert(run, strategy, options, low, weight, operator,
                         targets.labels)
  bicubic = images_lib.bicubic_upsample(low, options.factor)
  # The low-resolution input as blocks at the full size, to look at.
  blocks = np.repeat(np.repeat(low, options.factor, 1), options.factor, 2)
  pictures = [("low_resolution.png", blocks), ("bicubic.png", bicubic),
              ("result.png", result.images)]
  columns = [blocks, bicubic, result.images]
  if truth is not None:
    pictures.append(("truth.png", truth))
    columns.append(truth)
  for name, images in pictures:
    common.write_grid(options, name, images)
  common.write_grid(options, "comparison.png", _comparison(*columns),
                    columns=len(columns))
  report = {**common.report_header(run, options), "task": "superres",
            "images": targets.origin, "factor": options.factor,
            "low_resolution": [low_size, low_size],
            "comparison_columns": ["low_resolution", "bicubic", "gan",
                                   "truth"][:len(columns)],
            "inversion": common.inversion_report(result, options)}
  if truth is not None:
    report["quality"] = _quality(truth, {"gan": result.images,
                                         "bicubic": bicubic}, None)
  return common.write_report(options, report)


@TASKS.register("transfer")
def transfer(run: TrainedRun, strategy: tf.distribute.Strategy,
             options: Options) -> dict:
  """Redraws each image as every class, keeping its inverted latent."""
  split = common.split(run, options)
  if not run.num_classes:
    raise UserError(
        "transfer needs a class-conditional model, and this run's "
        "model.num_classes is 0; train one with configs/cgan_mnist.py")
  if options.inversion.space != "z":
    raise UserError(
        f"transfer keeps the latent and changes the class, which enters G "
        f"through its mapping network: it needs --space=z (a w of "
        f"--space={options.inversion.space} has its class already)")
  targets = load_targets(run, options)
  images, labels = targets.images, targets.labels
  weight = np.ones(images.shape[:3] + (1,), np.float32)
  result = common.invert(run, strategy, options, images, weight,
                         lambda x: x, labels)
  classes = run.num_classes
  count = len(images)
  z = np.repeat(result.latents, classes, axis=0)  # [N * K, D]
  to = np.tile(np.arange(classes, dtype=np.int32), count)  # [N * K]
  # As the inversion drew the reconstruction, so that only the class differs.
  redrawn = distribute.map_rows(
      strategy, lambda z, labels: split.render(z, "z", labels), z, to)
  rows = np.concatenate([images[:, None], result.images[:, None],
                         redrawn.reshape((count, classes) + images.shape[1:])],
                        axis=1)  # [N, 2 + K, H, W, C]
  common.write_grid(options, "transfer.png",
                    rows.reshape((-1,) + images.shape[1:]),
                    columns=classes + 2)
  report = {**common.report_header(run, options), "task": "transfer",
            "images": targets.origin, "source_labels": labels.tolist(),
            "columns": ["input", "reconstruction"]
                       + [f"class {k}" for k in range(classes)],
            "reconstruction_psnr": float(np.mean(
                images_lib.psnr(result.images, images))),
            "inversion": common.inversion_report(result, options)}
  report.update(_classified(run, strategy, redrawn, to,
                            np.repeat(labels, classes)))
  return common.write_report(options, report)


def _classified(run: TrainedRun, strategy: tf.distribute.Strategy,
                images: np.ndarray, targets: np.ndarray,
                from_labels: np.ndarray) -> dict:
  """How often the evaluation's classifier reads the asked class.

  Only for extractors whose classes are the model's (the MNIST classifier
  for MNIST); over the transferred images, i.e. those whose class changed.
  """
  e = run.config.eval
  try:
    with strategy.scope():
      extractor = features_lib.build(e.extractor, e.extractor_path,
                                     run.image_shape)
  except UserError as error:
    logging.warning("No classifier check: %s", error)
    return {"classifier": None}
  if extractor.num_classes != run.num_classes:
    return {"classifier": None}
  probabilities = np.concatenate([
      extractor.extract(tf.constant(images[i:i + 500]))[1].numpy()
      for i in range(0, len(images), 500)])
  read = probabilities.argmax(-1)
  changed = targets != from_labels
  return {"classifier": extractor.identity,
          "target_class_accuracy": float(np.mean(read[changed]
                                                 == targets[changed])),
          "same_class_accuracy": float(np.mean(read[~changed]
                                               == targets[~changed]))}


def _mixed_layers(run: TrainedRun, split: latent_lib.LatentSplit,
                  options: Options) -> range:
  """The ws [a, b) that the second latent gives: --layers=a:b, else those
  from --cutoff on (default min(4, num_ws - 1): StyleGAN's fine styles)."""
  spec = options.directions.layers
  if spec and options.cutoff is not None:
    raise UserError(
        f"--layers={spec} and --cutoff={options.cutoff} both choose the ws "
        "taken from the second image: give one (--cutoff=c is "
        "--layers=c:)")
  if spec:
    return directions_lib.layers_of(spec, split,
                                    run.config.model.architecture)
  return range(options.cutoff or min(_COARSE_WS, split.num_ws - 1),
               split.num_ws)


@dataclasses.dataclass(frozen=True)
class _Inverted:
  """Pairs of real images and their ws, found by inversion."""
  inputs: np.ndarray  # [N, H, W, C] in [-1, 1], of --input
  mix_inputs: np.ndarray  # [N, H, W, C], of --mix_input
  ws: np.ndarray  # [N, num_ws, w_dim] of --input
  mix_ws: np.ndarray  # [N, num_ws, w_dim] of --mix_input
  report: dict


def _inverted_pairs(run: TrainedRun, strategy: tf.distribute.Strategy,
                    split: latent_lib.LatentSplit,
                    options: Options) -> _Inverted:
  """The --input and --mix_input images (two files, or two folders of as
  many images paired in name order), inverted together in --space."""
  model = run.config.model
  (inputs, input_paths), (mix_inputs, mix_paths) = (
      images_lib.read_images(path, flag=flag, image_size=model.image_size,
                             channels=model.channels, resize=options.resize)
      for flag, path in (("--input", options.input),
                         ("--mix_input", options.mix_input)))
  count = len(inputs)
  if len(mix_inputs) != count:
    raise UserError(
        f"--input={options.input} has {count} images and --mix_input="
        f"{options.mix_input} has {len(mix_inputs)}; mix pairs them in name "
        "order: give as many")
  images = images_lib.from_uint8(np.concatenate([inputs, mix_inputs]))
  labels = mix_labels = common.input_labels(run, count, options.label)
  if options.mix_label >= 0:  # --mix_input's class; else --label's
    mix_labels = common.labels_for(run, count, options.mix_label,
                                   "--mix_label")
  if labels is not None:
    labels = np.concatenate([labels, mix_labels])
  result = common.invert(run, strategy, options, images,
                         np.ones(images.shape[:3] + (1,), np.float32),
                         lambda x: x, labels)
  space = options.inversion.space
  ws = distribute.map_rows(
      strategy, lambda x, labels=None: split.ws_of(x, space, labels),
      result.latents, labels)
  psnr = images_lib.psnr(result.images, images)  # [2N]
  return _Inverted(images[:count], images[count:], ws[:count], ws[count:], {
      "images": {"input": input_paths, "mix_input": mix_paths},
      "labels": None if labels is None else {
          "input": int(labels[0]), "mix_input": int(labels[count])},
      "reconstruction_psnr": float(np.mean(psnr)),
      "reconstruction_psnr_per_image": {"input": psnr[:count].tolist(),
                                        "mix_input": psnr[count:].tolist()},
      "inversion": common.inversion_report(result, options)})


@TASKS.register("mix")
def mix(run: TrainedRun, strategy: tf.distribute.Strategy,
        options: Options) -> dict:
  """Style mixing: a first latent's ws with a second's at --layers.

  The ws taken from the second are --layers=a:b, or those from --cutoff on
  (the fine styles). The latents are --num pairs drawn from --seed
  (truncated by --psi), or those of real images inverted in --space:
  --input (the first) and --mix_input (the second), two files or two
  folders paired in name order; that is attribute transfer, the second's
  layers' attributes drawn into the first. Every image is drawn with G's
  fixed noise, so that a row's images differ by their styles alone.
  Writes grid.png (per row: first, second, mixed; of images: input,
  reconstruction, mix input, its reconstruction, mixed), images/<i>.png
  (the mixed), reconstructions/<i>_input.png and <i>_mix_input.png, and
  mix.npz (the ws and images of all three).
  """
  split = common.split(run, options, mixing=True)
  layers = _mixed_layers(run, split, options)
  if bool(options.input) != bool(options.mix_input):
    raise UserError(
        "mix inverts two images: give both --input (the image mixed into) "
        "and --mix_input (the image whose --layers it takes), or neither to "
        "mix --num pairs of random latents")
  if options.mix_label >= 0 and not options.mix_input:
    raise UserError(f"--mix_label={options.mix_label} is the class of "
                    "--mix_input, and there is none: give --input and "
                    "--mix_input, or leave --mix_label out")
  report = {**common.report_header(run, options), "task": "mix",
            "layers": [layers.start, layers.stop],
            "cutoff": None if options.directions.layers else layers.start,
            "num_ws": split.num_ws}
  inverted = None
  if options.input:
    inverted = _inverted_pairs(run, strategy, split, options)
    first, second = inverted.ws, inverted.mix_ws
    report.update(inverted.report)
  else:
    z = common.latents(2 * options.num, run.config.model.latent_dim,
                       options.seed, options.truncation)
    labels = common.labels_for(run, 2 * options.num, options.label)
    ws = distribute.map_rows(
        strategy, lambda z, labels=None: split.truncated_w(
            z, labels, psi=options.psi, cutoff=options.truncation_cutoff),
        z, labels)
    first, second = ws[:options.num], ws[options.num:]
    report.update(truncation=options.truncation, psi=options.psi,
                  truncation_cutoff=options.truncation_cutoff)
  mixed_ws, pictures = distribute.map_rows(strategy, lambda a, b: (
      split.mix(a, b, layers),
      [split.render(w, "w+", None) for w in (a, b, split.mix(a, b, layers))]),
                                           first, second)
  first_images, second_images, mixed = pictures
  columns = {"first": first_images, "second": second_images, "mixed": mixed}
  saved = {}
  if inverted:
    columns = {"input": inverted.inputs, "reconstruction": first_images,
               "mix_input": inverted.mix_inputs,
               "mix_reconstruction": second_images, "mixed": mixed}
    saved = {"inputs": inverted.inputs, "mix_inputs": inverted.mix_inputs}
    for i, pair in enumerate(zip(first_images, second_images)):
      for name, image in zip(("input", "mix_input"), pair):
        images_lib.write_png(os.path.join(
            options.output_dir, "reconstructions", f"{i:06d}_{name}.png"),
                             image)
  rows = np.stack(list(columns.values()), axis=1)  # [N, columns, H, W, C]
  common.write_grid(options, "grid.png", rows.reshape((-1,) + rows.shape[2:]),
                    columns=len(columns))
  for i, image in enumerate(mixed):
    images_lib.write_png(
        os.path.join(options.output_dir, "images", f"{i:06d}.png"), image)
  files.write_npz(os.path.join(options.output_dir, "mix.npz"),
                  first_ws=first, second_ws=second, mixed_ws=mixed_ws,
                  first_images=first_images, second_images=second_images,
                  images=mixed, **saved)
  report["columns"] = list(columns)
  return common.write_report(options, report)


@TASKS.register("export")
def export(run: TrainedRun, strategy: tf.distribute.Strategy,
           options: Options) -> dict:
  """A SavedModel of G_ema in --output_dir (see trainer.apply.export)."""
  del strategy  # The SavedModel is written from the variables' values.
  common.split(run, options)
  metadata = export_lib.export_generator(
      run.state.generator_ema, options.output_dir, config=run.config,
      step=run.step)
  return {**common.report_header(run, options), "task": "export",
          "metadata": metadata}


def default_output_dir(workdir: str, task: str, step: int) -> str:
  """<workdir>/apply/<task>, and <workdir>/export/step_<step> for export."""
  if task == "export":
    return os.path.join(workdir, "export", f"step_{step}")
  return os.path.join(workdir, "apply", task)
