"""Exports a generator as a TensorFlow SavedModel that needs no project code.

A program with TensorFlow alone loads and samples it:

  loaded = tf.saved_model.load(export_dir)
  metadata = json.loads(loaded.signatures["metadata"]()["json"].numpy())
  z = tf.random.normal([16, metadata["latent_dim"]])
  outputs = loaded.signatures["serving_default"](z=z)  # also labels=... if
                                                       # num_classes > 0
  outputs["images"]        # float32 [16, H, W, C] in [-1, 1]
  outputs["images_uint8"]  # uint8 [16, H, W, C], ready for tf.io.encode_png

A G with a mapping network (StyleGAN2) also takes psi, a float32 scalar in
[0, 1]: its ws are truncated toward the average w (1: G itself, 0: every
image is the average w's). A signature has no optional inputs, so psi is
always given; the metadata's "psi" says so.

The export directory holds the SavedModel (saved_model.pb, variables/) and,
next to saved_model.pb, gan_metadata.json: the same JSON that the `metadata`
signature returns, for readers that do not load the model.
"""

import importlib.metadata
import json
import os
import uuid

import keras
import ml_collections
import tensorflow as tf

from trainer.errors import UserError
from trainer import files
from trainer import models
from trainer.models import ARCHITECTURES

METADATA_FILE = "gan_metadata.json"
SERVING_SIGNATURE = "serving_default"
METADATA_SIGNATURE = "metadata"
# The key of the metadata signature's one output, a string scalar.
METADATA_OUTPUT = "json"
_DISTRIBUTION = "gan-trainer"


def _project_version() -> str | None:
  """This project's installed version; None when run from a bare checkout."""
  try:
    return importlib.metadata.version(_DISTRIBUTION)
  except importlib.metadata.PackageNotFoundError:
    return None


def _to_uint8(images: tf.Tensor) -> tf.Tensor:
  """[-1, 1] floats [B, H, W, C] -> uint8 [B, H, W, C], rounded, clipped.

  The mapping of trainer.apply.images.to_uint8, in float64 and rounding half
  to even as it does, so that served uint8 images equal this project's PNGs.
  """
  scaled = (tf.cast(images, tf.float64) + 1.0) * 127.5
  return tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)


def _describe(spec: tf.TensorSpec | tf.Tensor) -> dict:
  """A tensor's dtype and shape (None for the batch) as JSON values."""
  return {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}


def _check_export_dir(export_dir: str) -> None:
  """UserError unless export_dir is missing or an empty directory."""
  if not tf.io.gfile.exists(export_dir):
    return
  if not tf.io.gfile.isdir(export_dir):
    raise UserError(f"{export_dir} exists and is not a directory; choose "
                    "another --output_dir")
  if tf.io.gfile.listdir(export_dir):
    raise UserError(f"{export_dir} already exists and is not empty; choose "
                    "another --output_dir or delete it")


def _write(generator: keras.Model, directory: str, *,
           model_config: ml_collections.ConfigDict, step: int) -> dict:
  """Writes the SavedModel and gan_metadata.json; returns the metadata."""
  num_classes = model_config.num_classes
  split = ARCHITECTURES.get(model_config.architecture).split(generator)
  inputs = [tf.TensorSpec([None, model_config.latent_dim], tf.float32,
                          name="z")]
  if split.has_mapping:
    inputs.append(tf.TensorSpec([], tf.float32, name="psi"))
  if num_classes:
    inputs.append(tf.TensorSpec([None], tf.int32, name="labels"))

  def serve(z: tf.Tensor, labels: tf.Tensor | None = None,
            psi: tf.Tensor | None = None) -> dict:
    if labels is not None:
      # On GPUs an embedding lookup out of range silently returns zeros. The
      # lookup waits for the checks, so a bad label always fails with their
      # message (on CPUs the lookup's own error would otherwise race it).
      checks = [
          tf.debugging.assert_non_negative(labels,
                                           message="labels must be >= 0"),
          tf.debugging.assert_less(
              labels, num_classes,
              message=f"labels must be < num_classes = {num_classes}")]
      with tf.control_dependencies(checks):
        labels = tf.identity(labels)  # [B]
    if psi is None:
      # Inference mode: batch norm uses its moving statistics.
      images = models.generate(generator, z, labels,
                                  training=False)  # [B, H, W, C]
    else:
      checks = [tf.debugging.assert_greater_equal(
                    psi, 0.0, message="psi must be in [0, 1]"),
                tf.debugging.assert_less_equal(
                    psi, 1.0, message="psi must be in [0, 1]")]
      with tf.control_dependencies(checks):
        psi = tf.identity(psi)
      images = split.generate(z, labels, psi=psi)  # [B, H, W, C]
    return {"images": images, "images_uint8": _to_uint8(images)}

  def serve_truncated(z: tf.Tensor, psi: tf.Tensor,
                      labels: tf.Tensor | None = None) -> dict:
    return serve(z, labels, psi)

  archive = keras.export.ExportArchive()
  archive.track(generator)
  endpoint = archive.add_endpoint(
      SERVING_SIGNATURE, serve_truncated if split.has_mapping else serve,
      input_signature=inputs)
  # The traced outputs, so that the metadata describes what is served.
  outputs = endpoint.get_concrete_function().structured_outputs
  _, image_size, _, channels = outputs["images"].shape.as_list()
  metadata = {
      "image_size": image_size,
      "channels": channels,
      "value_range": [-1.0, 1.0],
      "latent_dim": model_config.latent_dim,
      "latent_distribution": "standard normal",
      "num_classes": num_classes,
      "signature": SERVING_SIGNATURE,
      "inputs": {spec.name: _describe(spec) for spec in inputs},
      "outputs": {name: _describe(tensor) for name, tensor in outputs.items()},
      **({"psi": {"range": [0.0, 1.0], "plain": 1.0,
                  "truncates": "ws toward the average w"}}
         if split.has_mapping else {}),
      "step": step,
      "model_config": model_config.to_dict(),
      "project_version": _project_version(),
      "tensorflow_version": tf.__version__,
      "keras_version": keras.__version__,
  }
  text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"
  archive.add_endpoint(METADATA_SIGNATURE,
                       lambda: {METADATA_OUTPUT: tf.constant(text)},
                       input_signature=[])
  archive.write_out(directory, verbose=False)
  files.write_atomically(os.path.join(directory, METADATA_FILE), text)
  return metadata


def export_generator(generator: keras.Model, export_dir: str, *,
                     config: ml_collections.ConfigDict, step: int) -> dict:
  """Writes a SavedModel of `generator` that TensorFlow alone can serve.

  Signatures of the SavedModel (see the module docstring for an example):
    serving_default: z float32 [None, latent_dim] (with a mapping network,
      psi float32 [] in [0, 1], 1 for G's plain images; for a class-
      conditional model, labels int32 [None] in [0, num_classes)) ->
      {"images": float32 [None, H, W, C] in [-1, 1], "images_uint8": uint8
      [None, H, W, C]}, any batch size, in inference mode.
    metadata: no inputs -> {"json": string scalar}, the returned metadata as
      JSON; the same text is in gan_metadata.json next to saved_model.pb.

  The export is written to a temporary sibling directory that is renamed to
  export_dir at the end, so a failed export leaves no export_dir behind. The
  rename is atomic where the filesystem's is (local disks); object stores
  such as gs:// copy file by file.

  Args:
    generator: the generator to serve; in practice G_ema.
    export_dir: where to write (any tf.io.gfile path); must not exist or be
      an empty directory.
    config: the experiment config the generator was built from; its `model`
      section gives the inputs and goes into the metadata.
    step: the training step of the generator's weights, for the metadata.

  Returns:
    The metadata: image_size, channels, value_range, latent_dim,
    latent_distribution, num_classes (0: unconditional), the serving
    signature's name, its inputs and outputs (dtype and shape, None for the
    batch), psi (with a mapping network: its range and plain value), step,
    model_config, project_version (None if the project is not installed),
    tensorflow_version and keras_version.

  Raises:
    UserError: export_dir exists and is not an empty directory.
  """
  # Without the trailing slash, the sibling is beside export_dir, not in it.
  export_dir = export_dir.rstrip("/") or export_dir
  _check_export_dir(export_dir)
  parent, name = os.path.split(export_dir)
  tf.io.gfile.makedirs(parent or ".")
  temp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}-{name}")
  try:
    metadata = _write(generator, temp, model_config=config.model, step=step)
    # Replaces an empty export_dir; a non-empty one was refused above.
    tf.io.gfile.rename(temp, export_dir, overwrite=True)
  finally:
    if tf.io.gfile.exists(temp):
      tf.io.gfile.rmtree(temp)
  return metadata
