"""The tasks `directions` and `edit` of `python -m trainer.apply`.

`directions` finds directions in G's latent space that each change one
thing (the methods are in trainer/apply/directions.py); `edit` moves
sampled or inverted latents along one (trainer/apply/editing.py). Both
read their options through one directions.Request. trainer/apply/tasks.py
registers them in TASKS with the other tasks.
"""

import json
import os

import numpy as np
import tensorflow as tf

from trainer.apply import common
from trainer.apply import directions as directions_lib
from trainer.apply import editing as editing_lib
from trainer.apply import images as images_lib
from trainer.apply.common import Options
from trainer.apply.run import TrainedRun
from trainer import distribute
from trainer.errors import UserError
from trainer import files


def _directions_request(run: TrainedRun, strategy: tf.distribute.Strategy,
                        options: Options) -> directions_lib.Request:
  """What `directions` and `edit` read, once their options are checked."""
  split = common.split(run, options)
  if options.input or options.directions.positive:  # checked before work
    common.input_labels(run, 0, options.label, "--input" if options.input
                        else "--positive and --negative")
  return directions_lib.Request(
      run=run, strategy=strategy, split=split, settings=options.directions,
      layers=directions_lib.layers_of(options.directions.layers, split,
                                      run.config.model.architecture),
      seed=options.seed,
      labels_for=lambda count: common.labels_for(run, count, options.label),
      inversion=options.inversion_settings, resize=options.resize)


def _edit_latents(request: directions_lib.Request, options: Options,
                  count: int) -> tuple[np.ndarray, np.ndarray | None]:
  """`count` latents from --seed as edits move them: ws (truncated by
  --psi) [N, num_ws, w_dim] or z [N, latent_dim], and their labels."""
  z = common.latents(count, request.run.config.model.latent_dim,
                     options.seed, options.truncation)
  labels = request.labels_for(count)
  split = request.split
  return distribute.map_rows(
      request.strategy, lambda z, labels=None: split.truncated_w(
          z, labels, psi=options.psi, cutoff=options.truncation_cutoff),
      z, labels), labels


def _inverted_latents(request: directions_lib.Request, options: Options
                      ) -> tuple[np.ndarray, np.ndarray | None, dict]:
  """The latents of the --input images (a file or a folder) inverted in
  --space, as edits move them (ws or z); their labels; for the report."""
  run, split = request.run, request.split
  model = run.config.model
  images, paths = images_lib.read_images(
      options.input, flag="--input", image_size=model.image_size,
      channels=model.channels, resize=options.resize)
  images = images_lib.from_uint8(images)
  labels = request.labels_for(len(images))
  result = common.invert(run, request.strategy, options, images,
                         np.ones(images.shape[:3] + (1,), np.float32),
                         lambda x: x, labels)
  space = options.inversion.space
  latents = distribute.map_rows(
      request.strategy, lambda x, labels=None: split.ws_of(x, space, labels),
      result.latents, labels)
  return latents, labels, {
      "images": {"input": paths},
      "inversion": common.inversion_report(result, options)}


def directions(run: TrainedRun, strategy: tf.distribute.Strategy,
               options: Options) -> dict:
  """Directions by --method (trainer/apply/directions.py): directions.npy
  [K, D] (and the --condition directions, conditions.npy), directions.json
  and grid.png (per row a direction's effect on a
  sample, over strengths from -s to s)."""
  request = _directions_request(run, strategy, options)
  found = directions_lib.find(request)
  settings = options.directions
  strengths = np.linspace(-settings.strength, settings.strength,
                          settings.strength_steps)
  scale = editing_lib.latent_scale(request)
  latents, labels = _edit_latents(request, options,
                                  directions_lib.GRID_SAMPLES)
  rows = np.concatenate([
      editing_lib.render_edits(request, latents, vector, strengths, scale,
                               labels)[1]
      for vector in found.vectors[:directions_lib.GRID_DIRECTIONS]
  ])  # [K * samples, T, H, W, C]
  summary = {**directions_lib.description(request, found), "scale": scale,
             "grid_strengths": strengths.tolist()}
  files.write_npy(os.path.join(options.output_dir, "directions.npy"),
                  found.vectors.astype(np.float32))
  if found.conditions is not None:  # what --condition projected out
    files.write_npy(os.path.join(options.output_dir, "conditions.npy"),
                    found.conditions.astype(np.float32))
  files.write_atomically(os.path.join(options.output_dir, "directions.json"),
                         json.dumps(summary, indent=2) + "\n")
  common.write_grid(options, "grid.png",
                    rows.reshape((-1,) + rows.shape[2:]),
                    columns=len(strengths))
  return common.write_report(options, {
      **common.report_header(run, options), "task": "directions",
      **summary})


def edit(run: TrainedRun, strategy: tf.distribute.Strategy,
         options: Options) -> dict:
  """Moves latents along --direction over --strengths: grid.png (a row per
  image, a column per strength), images/<i>_<t>.png and edit.npz.

  The latents are --num drawn from --seed, or those of the --input images
  (a file or a folder) inverted in --space; in w only ws[--layers] move.
  """
  request = _directions_request(run, strategy, options)
  settings = options.directions
  if not settings.direction:
    raise UserError("edit needs --direction=<directions.npy>[:index], as "
                    "python -m trainer.apply directions writes it")
  direction = directions_lib.load_direction(
      settings.direction, flag="--direction", request=request)
  layers = request.layers
  report = {**common.report_header(run, options), "task": "edit",
            "direction": settings.direction,
            "layers": [layers.start, layers.stop] if layers else None}
  if options.input:
    latents, labels, inverted = _inverted_latents(request, options)
    report.update(inverted)
  else:
    latents, labels = _edit_latents(request, options, options.num)
    report.update(truncation=options.truncation, psi=options.psi,
                  truncation_cutoff=options.truncation_cutoff)
  strengths = np.linspace(*settings.strengths, settings.strength_steps)
  scale = editing_lib.latent_scale(request)
  moved, images = editing_lib.render_edits(request, latents, direction,
                                           strengths, scale, labels)
  common.write_grid(options, "grid.png",
                    images.reshape((-1,) + images.shape[2:]),
                    columns=len(strengths))
  for i, row in enumerate(images):
    for t, image in enumerate(row):
      images_lib.write_png(os.path.join(options.output_dir, "images",
                                        f"{i:06d}_{t:02d}.png"), image)
  files.write_npz(os.path.join(options.output_dir, "edit.npz"),
                  latents=latents, edited_latents=moved, strengths=strengths,
                  images=images)
  return common.write_report(options, {
      **report, "strengths": strengths.tolist(), "scale": scale})
