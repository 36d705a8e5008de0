"""The exported generator, served by a process that cannot import the project.

An unconditional and a class-conditional DCGAN and a StyleGAN2 are each
trained for a few steps on real MNIST once per module; their G_ema is
exported and loaded by a child Python process in which `import trainer`
fails, as for a user who has TensorFlow alone.
"""

import json
import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_STYLEGAN2, cpu_strategy, load_config
from tests.conftest import functions_run_eagerly
from tests.conftest import run_command
from trainer.apply import export
from trainer.apply import images
from trainer.errors import UserError
from trainer import loop
from trainer import models
from trainer.models import ARCHITECTURES

STEPS = 10
# Batch sizes of the child's two calls: neither is one that training used
# (8, 16, 128), and they differ from each other (the batch is dynamic).
BATCH, SMALL_BATCH = 7, 3

# Run as `python child.py EXPORT_DIR INPUTS.npz OUTPUTS.npz SMALL_BATCH`.
CHILD = r'''
import importlib.abc
import sys


class BlockProject(importlib.abc.MetaPathFinder):
  """Makes `trainer` and its submodules unimportable."""

  def find_spec(self, name, path=None, target=None):
    if name == "trainer" or name.startswith("trainer."):
      raise ImportError(f"{name} is blocked in this process")
    return None


sys.meta_path.insert(0, BlockProject())
try:
  import trainer  # noqa: F401
except ImportError:
  pass
else:
  sys.exit("import trainer succeeded although it was blocked")

import json
import os

import numpy as np
import tensorflow as tf

export_dir, inputs_path, outputs_path, small_batch = sys.argv[1:]
loaded = tf.saved_model.load(export_dir)
from_signature = loaded.signatures["metadata"]()["json"].numpy().decode()
with open(os.path.join(export_dir, "gan_metadata.json")) as f:
  from_file = f.read()
metadata = json.loads(from_signature)

serve = loaded.signatures[metadata["signature"]]
inputs = dict(np.load(inputs_path))
if not metadata["num_classes"]:
  inputs.pop("labels", None)
outputs = serve(**{k: tf.constant(v) for k, v in inputs.items()})
# Rows of the batched inputs; scalars (psi) as they are.
small = serve(**{k: tf.constant(v[:int(small_batch)] if v.ndim else v)
                 for k, v in inputs.items()})


def describe(spec):
  return {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}


signature = {
    "inputs": {k: describe(s)
               for k, s in serve.structured_input_signature[1].items()},
    "outputs": {k: describe(s) for k, s in serve.structured_outputs.items()},
}
np.savez(outputs_path, from_signature=from_signature, from_file=from_file,
         signature=json.dumps(signature),
         project_modules=json.dumps(
             [m for m in sys.modules if m.split(".")[0] == "trainer"]),
         **{k: v.numpy() for k, v in outputs.items()},
         **{f"small_{k}": v.numpy() for k, v in small.items()})
'''


# One training per model: `-m "not slow"` trains the conditional one only.
@pytest.fixture(scope="module", params=[
    pytest.param(0, id="unconditional", marks=pytest.mark.slow),
    pytest.param(10, id="conditional")])
def trained(request, mnist_dir, tmp_path_factory):
  """(config, state) after a few real training steps."""
  config = load_config("smoke", **{
      "data.source": f"idx:{mnist_dir}", "data.split": "test",
      "model.g_width": 8, "model.d_width": 8,
      "model.num_classes": request.param, "train.batch_size": 8,
      "train.steps": STEPS, "train.eval_every": 0})
  # Two replicas: G_ema's variables are mirrored, as in a multi-GPU run.
  state = loop.run(config, str(tmp_path_factory.mktemp("run")),
                    cpu_strategy(2))
  return config, state


def _serve_in_child(export_dir: pathlib.Path, inputs: dict[str, np.ndarray],
                    tmp: pathlib.Path) -> dict[str, np.ndarray]:
  """The child's outputs for the inputs, from the export at export_dir."""
  np.savez(tmp / "inputs.npz", **inputs)
  (tmp / "child.py").write_text(CHILD)
  code, _, err = run_command(sys.executable, str(tmp / "child.py"),
                             str(export_dir), str(tmp / "inputs.npz"),
                             str(tmp / "outputs.npz"), str(SMALL_BATCH),
                             cwd=tmp)
  assert code == 0, err
  with np.load(tmp / "outputs.npz") as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory):
  """Exports G_ema and serves it in a child process without the project.

  Returns:
    (metadata returned by the export, inputs, the child's outputs, G_ema's
    own images [BATCH, 28, 28, 1] for the inputs).
  """
  config, state = trained
  tmp = tmp_path_factory.mktemp("served")
  # A directory that does not exist yet, nor does its parent.
  export_dir = tmp / "exports" / "generator"
  metadata = export.export_generator(state.generator_ema, str(export_dir),
                                     config=config, step=STEPS)
  rng = np.random.default_rng(0)
  inputs = {"z": rng.standard_normal((BATCH, 100)).astype(np.float32),
            "labels": (np.arange(BATCH) % 10).astype(np.int32)}
  outputs = _serve_in_child(export_dir, inputs, tmp)
  labels = inputs["labels"] if config.model.num_classes else None
  reference = models.generate(state.generator_ema, inputs["z"], labels,
                                 training=False).numpy()
  return metadata, inputs, outputs, reference


def _assert_uint8_rounds(served: np.ndarray, reference: np.ndarray) -> None:
  """served == to_uint8(reference), but for values within float32 noise of
  a rounding boundary (x.5 after scaling), where it may be 1 off."""
  expected = images.to_uint8(reference).astype(int)
  scaled = (reference.astype(np.float64) + 1.0) * 127.5
  on_boundary = np.abs(scaled - np.floor(scaled) - 0.5) < 2e-3
  difference = np.abs(served.astype(int) - expected)
  assert difference.max() <= 1
  assert not difference[~on_boundary].any()


@pytest.mark.slow
def test_the_child_could_not_import_the_project(served):
  _, _, outputs, _ = served
  assert json.loads(outputs["project_modules"].item()) == []


@pytest.mark.slow
def test_served_images_equal_g_ema(served):
  _, _, outputs, reference = served
  assert outputs["images"].dtype == np.float32
  assert outputs["images"].shape == (BATCH, 28, 28, 1)
  np.testing.assert_allclose(outputs["images"], reference, rtol=0, atol=1e-5)
  assert outputs["images_uint8"].dtype == np.uint8
  _assert_uint8_rounds(outputs["images_uint8"], reference)
  # Not a constant: the trained G_ema makes different images of z.
  assert reference.std(axis=0).mean() > 1e-3


@pytest.mark.slow
def test_batch_size_is_dynamic(served):
  _, _, outputs, reference = served
  assert outputs["small_images"].shape == (SMALL_BATCH, 28, 28, 1)
  # Inference mode: batch norm's moving statistics, so each image depends
  # on its own inputs only.
  np.testing.assert_allclose(outputs["small_images"], reference[:SMALL_BATCH],
                             rtol=0, atol=1e-5)
  _assert_uint8_rounds(outputs["small_images_uint8"], reference[:SMALL_BATCH])


@pytest.mark.slow
def test_metadata(served, trained):
  metadata, _, outputs, _ = served
  config, _ = trained
  assert json.loads(outputs["from_signature"].item()) == metadata
  assert outputs["from_file"].item() == outputs["from_signature"].item()
  num_classes = config.model.num_classes
  expected_inputs = {"z": {"dtype": "float32", "shape": [None, 100]}}
  if num_classes:
    expected_inputs["labels"] = {"dtype": "int32", "shape": [None]}
  expected_outputs = {
      "images": {"dtype": "float32", "shape": [None, 28, 28, 1]},
      "images_uint8": {"dtype": "uint8", "shape": [None, 28, 28, 1]}}
  assert json.loads(outputs["signature"].item()) == {
      "inputs": expected_inputs, "outputs": expected_outputs}
  assert metadata["inputs"] == expected_inputs
  assert metadata["outputs"] == expected_outputs
  assert {k: metadata[k] for k in (
      "image_size", "channels", "value_range", "latent_dim",
      "latent_distribution", "num_classes", "signature", "step")} == {
          "image_size": 28, "channels": 1, "value_range": [-1.0, 1.0],
          "latent_dim": 100, "latent_distribution": "standard normal",
          "num_classes": num_classes, "signature": "serving_default",
          "step": STEPS}
  assert metadata["model_config"] == config.model.to_dict()
  assert metadata["project_version"]
  assert metadata["tensorflow_version"] == tf.__version__


def test_labels_are_taken_only_by_conditional_models_and_checked(
    trained, tmp_path):
  config, state = trained
  export.export_generator(state.generator_ema, str(tmp_path / "g"),
                          config=config, step=STEPS)
  serve = tf.saved_model.load(str(tmp_path / "g")).signatures[
      "serving_default"]
  inputs = set(serve.structured_input_signature[1])
  if not config.model.num_classes:
    assert inputs == {"z"}
    return
  assert inputs == {"z", "labels"}
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="labels must be < num_classes = 10"):
    serve(z=tf.zeros([2, 100]), labels=tf.constant([0, 10]))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="labels must be >= 0"):
    serve(z=tf.zeros([2, 100]), labels=tf.constant([-1, 0]))


def test_an_existing_empty_directory_is_used(trained, tmp_path):
  config, state = trained
  # With a trailing slash, as a shell completes a directory.
  export.export_generator(state.generator_ema, f"{tmp_path}/", config=config,
                          step=STEPS)
  assert (tmp_path / "saved_model.pb").exists()
  assert (tmp_path / export.METADATA_FILE).exists()
  assert [p.name for p in tmp_path.parent.iterdir()
          if p.name.startswith(".tmp-")] == []


def _contents(directory: pathlib.Path) -> dict[str, bytes]:
  return {str(p.relative_to(directory)): p.read_bytes()
          for p in directory.rglob("*") if p.is_file()}


def test_a_non_empty_export_dir_is_refused_and_kept(trained, tmp_path):
  config, state = trained
  export_dir = tmp_path / "export"
  (export_dir / "sub").mkdir(parents=True)
  (export_dir / "keep.txt").write_text("mine")
  (export_dir / "sub" / "data.bin").write_bytes(b"\x00\x01")
  before = _contents(export_dir)
  with pytest.raises(UserError,
                     match="choose another --output_dir or delete it"):
    export.export_generator(state.generator_ema, str(export_dir),
                            config=config, step=STEPS)
  assert _contents(export_dir) == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


# ---------------------------------------------------------------- stylegan2


@pytest.fixture(scope="module")
def stylegan2_export(mnist_dir, tmp_path_factory):
  """A tiny StyleGAN2's G_ema (w_avg set away from 0) and its export."""
  config = load_config("smoke", **{
      **TINY_STYLEGAN2, "data.source": f"idx:{mnist_dir}",
      "data.split": "test", "train.steps": 2, "train.eval_every": 0})
  # 2 steps, op by op (faster than building their graph), on one device
  # (eager execution cannot gather from replicas).
  with functions_run_eagerly():
    state = loop.run(config, str(tmp_path_factory.mktemp("stylegan2")),
                      cpu_strategy(1))
  split = ARCHITECTURES.get("stylegan2").split(state.generator_ema)
  split.w_avg.assign(np.random.default_rng(1).normal(size=16).astype(
      np.float32))
  export_dir = tmp_path_factory.mktemp("export") / "generator"
  metadata = export.export_generator(state.generator_ema, str(export_dir),
                                     config=config, step=2)
  return state, split, export_dir, metadata


@pytest.mark.slow
@pytest.mark.parametrize("psi", [1.0, 0.5])
def test_stylegan2_served_without_the_project_matches_g_ema(
    stylegan2_export, tmp_path, psi):
  state, split, export_dir, metadata = stylegan2_export
  z = np.random.default_rng(0).standard_normal((BATCH, 8)).astype(np.float32)
  outputs = _serve_in_child(export_dir, {"z": z, "psi": np.float32(psi)},
                            tmp_path)
  assert json.loads(outputs["project_modules"].item()) == []
  if psi == 1:  # G_ema itself
    reference = models.generate(state.generator_ema, z, None,
                                   training=False).numpy()
  else:
    reference = split.generate(tf.constant(z), None, psi=psi).numpy()
    assert np.abs(reference - models.generate(
        state.generator_ema, z, None, training=False).numpy()).max() > 1e-3
  assert outputs["images"].shape == (BATCH, 32, 32, 1)
  np.testing.assert_allclose(outputs["images"], reference, rtol=0, atol=1e-5)
  _assert_uint8_rounds(outputs["images_uint8"], reference)
  np.testing.assert_allclose(outputs["small_images"], reference[:SMALL_BATCH],
                             rtol=0, atol=1e-5)
  expected_inputs = {"z": {"dtype": "float32", "shape": [None, 8]},
                     "psi": {"dtype": "float32", "shape": []}}
  assert json.loads(outputs["signature"].item())["inputs"] == expected_inputs
  assert metadata["inputs"] == expected_inputs
  assert metadata["psi"]["range"] == [0.0, 1.0]
  assert metadata["psi"]["plain"] == 1.0


@pytest.mark.slow
def test_stylegan2_served_psi_outside_the_unit_interval_is_refused(
    stylegan2_export):
  _, _, export_dir, _ = stylegan2_export
  serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
  for psi in (-0.1, 1.5):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"psi must be in \[0, 1\]"):
      serve(z=tf.zeros([2, 8]), psi=tf.constant(psi))
