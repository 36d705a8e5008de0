"""Directions in the latent space (sefa, ganspace, labels) and edits.

The methods' mathematics against numpy on small random networks and on
synthetic latents (fast); the tasks `directions` and `edit` on a tiny
StyleGAN2 and a tiny DCGAN trained here for 2 steps on real MNIST (slow).
"""

import json
import pathlib
import sys

import keras
import numpy as np
import pytest
from PIL import Image
import tensorflow as tf

from tests.conftest import TINY_R3GAN, TINY_STYLEGAN2
from tests.conftest import cpu_strategy, load_config
from tests.conftest import functions_run_eagerly, run_command
from trainer.apply import directions
from trainer.apply import editing
from trainer.apply import images as images_lib
from trainer.apply import inversion
from trainer.apply import measures
from trainer.apply import run as run_lib
from trainer.apply import tasks
from trainer.data import sources
from trainer.errors import UserError
from trainer import loop
from trainer import models

NUM_WS, W_DIM, LATENT_DIM = 8, 16, 8
_TINY_DCGAN = {"model.g_width": 8, "model.d_width": 8,
               "train.batch_size": 8}


def _random_generator(family: str, **more):
  """A freshly initialised G of a tiny config of `family`, and its split."""
  overrides = {"stylegan2": TINY_STYLEGAN2, "dcgan": _TINY_DCGAN,
               "r3gan": TINY_R3GAN}[family]
  config = load_config("smoke", **overrides, **more)
  architecture = models.ARCHITECTURES.get(config.model.architecture)
  generator, _ = architecture(config.model, "float32")
  return generator, architecture.split(generator)


def _assert_same_up_to_sign(found: np.ndarray, expected: np.ndarray):
  """Unit rows [K, D] alike but for each row's sign."""
  cosines = np.abs(np.sum(found * expected, axis=1))
  np.testing.assert_allclose(cosines, np.ones(len(found)), atol=1e-4)


# ------------------------------------------------------- fast: the math


@pytest.mark.parametrize("family,num_classes", [
    ("stylegan2", 0), ("dcgan", 0), ("r3gan", 0), ("r3gan", 10)])
def test_sefa_is_the_eigendecomposition_of_the_stacked_weights(family,
                                                               num_classes):
  generator, split = _random_generator(
      family, **{"model.num_classes": num_classes})
  if family == "stylegan2":
    # Every affine kernel, as applied: the equalized learning rate's gain.
    kernels = [v.numpy() / np.sqrt(W_DIM) for v in generator.weights
               if v.path.endswith("affine/kernel")]
    assert len(kernels) == 11  # 7 convolutions and 4 toRGBs
    stacked = np.concatenate(kernels, axis=1).T  # [styles, w_dim]
    weights = split.latent_weights(range(NUM_WS)).numpy()
  elif family == "dcgan":
    # Found by type: Keras numbers the layers' names per process.
    dense = next(layer for layer in generator.layers
                 if isinstance(layer, keras.layers.Dense)).kernel
    stacked = dense.numpy()[:100].T  # [features, latent_dim]: z's rows
    weights = split.latent_weights(range(0)).numpy()
  else:
    # R3GAN's generative basis: its kernel's rows on z (a conditional G
    # concatenates the label's embedding after z: rows that are not z's).
    kernel = generator.get_layer("basis").kernel.numpy()
    assert kernel.shape[0] == 8 * (2 if num_classes else 1)
    stacked = kernel[:8].T  # [channels, latent_dim]
    weights = split.latent_weights(range(0)).numpy()
  values, vectors = np.linalg.eigh(stacked.T.astype(np.float64) @ stacked)
  found_values, found = directions.sefa(weights, 5)
  np.testing.assert_allclose(found_values, values[::-1][:5], rtol=1e-5)
  _assert_same_up_to_sign(found, vectors[:, ::-1][:, :5].T)


def test_sefa_layers_take_the_styles_of_the_ws_they_name():
  _, split = _random_generator("stylegan2")
  # ws 2 and 3: conv8_1, conv16_0 and torgb8, 16 input channels each.
  assert split.latent_weights(range(2, 4)).shape == (48, W_DIM)
  assert split.latent_weights(range(7, 8)).shape == (4, W_DIM)  # torgb32


def test_pca_is_the_svd_of_the_centred_samples():
  rng = np.random.default_rng(0)
  samples = rng.standard_normal((500, 12)) @ rng.standard_normal((12, 12))
  components, explained = directions.pca(samples + 3.0, 4)
  centred = samples - samples.mean(axis=0)
  _, values, vectors = np.linalg.svd(centred, full_matrices=False)
  _assert_same_up_to_sign(components, vectors[:4])
  np.testing.assert_allclose(explained, values[:4]**2 / np.sum(values**2),
                             rtol=1e-8)


def test_pca_of_wide_features_finds_the_top_components():
  # Wider than an exact SVD takes: the randomized SVD.
  rng = np.random.default_rng(0)
  scales = np.array([10.0, 8.0, 6.0, 4.0, 2.0])[:, None]
  basis = np.linalg.qr(rng.standard_normal((4200, 5)))[0].T  # [5, F]
  samples = (rng.standard_normal((300, 5)) @ (scales * basis)
             + 0.01 * rng.standard_normal((300, 4200))).astype(np.float32)
  components, explained = directions.pca(samples, 3)
  _, values, vectors = np.linalg.svd(samples - samples.mean(axis=0),
                                     full_matrices=False)
  _assert_same_up_to_sign(components, vectors[:3])
  np.testing.assert_allclose(explained, values[:3]**2 / np.sum(values**2),
                             rtol=1e-4)


def test_ganspace_in_z_reads_r3gans_generative_basis():
  # R3GAN's first features, the basis scaled by a linear map of z, are
  # linear in z: features = z M. The z of a component v is then the z
  # whose features move along v, as for any linear first layer.
  _, split = _random_generator("r3gan")
  z = np.random.default_rng(2).standard_normal((2000, 8)).astype(np.float32)
  features = split.first_features(tf.constant(z), None).numpy()
  assert features.shape == (2000, 4 * 4 * 32)
  linear = split.first_features(tf.eye(8), None).numpy()  # M [8, F]
  np.testing.assert_allclose(features, z @ linear, atol=1e-4)
  found, explained = directions.components_in_z(z, features, 3)
  components, _ = directions.pca(features, 3)
  # Each found z moves the features along its own component alone.
  moved = found @ linear
  moved /= np.linalg.norm(moved, axis=1, keepdims=True)
  np.testing.assert_allclose(np.abs(np.sum(moved * components, axis=1)),
                             np.ones(3), atol=1e-4)
  assert np.all(np.diff(explained) <= 0) and explained.sum() <= 1


def test_components_in_z_undo_a_linear_first_layer():
  # Features = z A for an invertible A: the z of component k is the
  # direction whose features move along it, A^-T v_k up to scale.
  rng = np.random.default_rng(1)
  z = rng.standard_normal((4000, 6))
  layer = rng.standard_normal((6, 30))
  found, _ = directions.components_in_z(z, z @ layer, 3)
  components, _ = directions.pca(z @ layer, 3)
  expected = components @ np.linalg.pinv(layer)  # [3, 6]
  expected /= np.linalg.norm(expected, axis=1, keepdims=True)
  np.testing.assert_allclose(np.abs(np.sum(found * expected, axis=1)),
                             np.ones(3), atol=1e-6)


def test_a_boundary_recovers_a_planted_direction_and_scores_itself():
  rng = np.random.default_rng(2)
  planted = rng.standard_normal(16)
  planted /= np.linalg.norm(planted)
  latents = rng.standard_normal((3000, 16)) * 2.0 + 0.5
  # A rare attribute (about 20%) with label noise: not separable.
  positive = latents @ planted + 0.3 * rng.standard_normal(3000) > 1.6
  boundary = directions.fit_boundary(latents, positive, seed=0)
  assert boundary.normal @ planted > 0.95
  assert 0.9 < boundary.balanced_accuracy <= boundary.accuracy + 0.05
  assert 0.9 < boundary.accuracy <= 1.0


def test_a_boundary_needs_latents_on_both_sides():
  latents = np.random.default_rng(0).standard_normal((50, 4))
  with pytest.raises(UserError, match="at least 5 latents on each side of "
                     "the boundary, and 3 of 50 have the attribute"):
    directions.fit_boundary(latents, np.arange(50) < 3, seed=0)


def test_the_conditional_direction_is_orthogonal_to_the_condition():
  rng = np.random.default_rng(3)
  normal, condition = rng.standard_normal((2, 16))
  normal /= np.linalg.norm(normal)
  result = directions.conditioned(normal, 3.0 * condition)
  assert abs(result @ condition) < 1e-12
  assert np.linalg.norm(result) == pytest.approx(1.0)
  assert result @ normal > 0  # what is left of the first
  with pytest.raises(UserError, match="nothing is left"):
    directions.conditioned(normal, -2.0 * normal)


def test_several_conditions_are_projected_out_and_a_repeat_adds_nothing():
  rng = np.random.default_rng(4)
  normal, first, second = rng.standard_normal((3, 16))
  result = directions.conditioned(normal, np.stack([first, second]))
  assert abs(result @ first) < 1e-12 and abs(result @ second) < 1e-12
  assert np.linalg.norm(result) == pytest.approx(1.0)
  # The span is what counts: the same condition twice, or scaled, is one.
  np.testing.assert_allclose(
      directions.conditioned(normal, np.stack([first, -2.0 * first])),
      directions.conditioned(normal, first), atol=1e-12)
  with pytest.raises(UserError, match="spans the direction found"):
    directions.conditioned(first + second, np.stack([first, second]))


def test_an_edit_moves_only_the_named_ws_and_none_at_strength_zero():
  rng = np.random.default_rng(4)
  ws = rng.standard_normal((3, NUM_WS, W_DIM)).astype(np.float32)
  direction = np.eye(W_DIM)[5]
  moved = editing.edited(ws, direction, np.array([-2.0, 0.0, 1.0]),
                            range(2, 4), scale=0.5)  # [3, 3, NUM_WS, W_DIM]
  np.testing.assert_array_equal(moved[:, 1], ws)
  change = moved - ws[:, None]
  np.testing.assert_allclose(change[:, 0, 2:4, 5], -1.0)
  np.testing.assert_allclose(change[:, 2, 2:4, 5], 0.5)
  assert np.count_nonzero(change) == 3 * 2 * 2


# ------------------------------------------------ slow: the tasks on runs


def _train(workdir: pathlib.Path, mnist_dir, **overrides) -> None:
  # 2 steps, op by op (faster than building their graph), on one device.
  with functions_run_eagerly():
    loop.run(load_config("smoke", **{
        "data.source": f"idx:{mnist_dir}", "data.split": "test[:9000]",
        "train.steps": 2, **overrides}), str(workdir), cpu_strategy(1))


@pytest.fixture(scope="module")
def runs(mnist_dir, tmp_path_factory) -> dict[str, run_lib.TrainedRun]:
  """A tiny StyleGAN2 and a tiny DCGAN, loaded on two replicas."""
  root = tmp_path_factory.mktemp("directions")
  _train(root / "stylegan2", mnist_dir, **TINY_STYLEGAN2)
  _train(root / "dcgan", mnist_dir, **_TINY_DCGAN)
  return {kind: run_lib.load(str(root / kind), cpu_strategy(2))
          for kind in ("stylegan2", "dcgan")}


def _options(tmp_path, **settings) -> tasks.Options:
  return tasks.Options(
      output_dir=str(tmp_path / "out"), num=settings.pop("num", 3),
      input=settings.pop("input", ""),
      inversion=inversion.Settings(steps=20, restarts=1),
      directions=directions.Settings(**{"num_samples": 300, **settings}))


def _apply(run, task: str, options: tasks.Options) -> dict:
  return tasks.TASKS.get(task)(run, cpu_strategy(2), options)


def _sampled_w(run, count: int, seed: int = 0) -> np.ndarray:
  """The w the methods sample: z from --seed, mapped."""
  z = np.random.default_rng(seed).standard_normal(
      (count, LATENT_DIM)).astype(np.float32)
  return run.split.to_w(tf.constant(z), None, False).numpy()[:, 0]


@pytest.mark.slow
def test_sefa_task_writes_the_factorization_of_its_layers(runs, tmp_path):
  run = runs["stylegan2"]
  report = _apply(run, "directions", _options(tmp_path, method="sefa",
                                               layers="2:4"))
  out = pathlib.Path(report["output_dir"])
  vectors = np.load(out / "directions.npy")
  summary = json.loads((out / "directions.json").read_text())
  assert vectors.shape == (10, W_DIM)
  assert summary["space"] == "w" and summary["layers"] == [2, 4]
  assert summary["method"] == "sefa" and summary["step"] == 2
  values, expected = directions.sefa(
      run.split.latent_weights(range(2, 4)).numpy(), 10)
  np.testing.assert_allclose(vectors, expected, atol=1e-6)
  np.testing.assert_allclose([d["eigenvalue"] for d in summary["directions"]],
                             values, rtol=1e-6)
  # 10 directions x 3 samples per row of 7 strengths, 32x32 tiles.
  grid = np.asarray(Image.open(out / "grid.png"))
  assert grid.shape == (30 * 33 - 1, 7 * 33 - 1)
  assert json.loads((out / "report.json").read_text())["task"] == "directions"


@pytest.mark.slow
def test_ganspace_is_the_pca_of_sampled_w(runs, tmp_path):
  run = runs["stylegan2"]
  report = _apply(run, "directions", _options(
      tmp_path, method="ganspace", num_directions=4))
  w = _sampled_w(run, 300).astype(np.float64)
  _, values, vectors = np.linalg.svd(w - w.mean(axis=0), full_matrices=False)
  found = np.load(pathlib.Path(report["output_dir"]) / "directions.npy")
  _assert_same_up_to_sign(found, vectors[:4])
  np.testing.assert_allclose(
      [d["explained_variance"] for d in report["directions"]],
      values[:4]**2 / np.sum(values**2), rtol=1e-4)


@pytest.mark.slow
def test_ganspace_in_z_for_a_dcgan(runs, tmp_path):
  report = _apply(runs["dcgan"], "directions", _options(
      tmp_path, method="ganspace", num_directions=3))
  found = np.load(pathlib.Path(report["output_dir"]) / "directions.npy")
  assert report["space"] == "z" and report["layers"] is None
  assert found.shape == (3, 100)
  np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1.0, rtol=1e-6)
  explained = [d["explained_variance"] for d in report["directions"]]
  assert explained == sorted(explained, reverse=True) and sum(explained) < 1


def _brightness_classifier(path: pathlib.Path) -> str:
  """A .keras model whose one output is an image's mean value."""
  model = keras.Sequential([keras.Input((32, 32, 1)),
                            keras.layers.GlobalAveragePooling2D()])
  model.save(path)
  return str(path)


@pytest.mark.slow
def test_labels_by_a_classifier_and_conditioned(runs, tmp_path):
  run = runs["stylegan2"]
  # The median brightness of the samples' images: half of them above it.
  w = _sampled_w(run, 300)
  brightness = run.split.render(tf.constant(w), "w", None).numpy().mean(
      axis=(1, 2, 3))
  condition = tmp_path / "condition.npy"
  np.save(condition, np.eye(W_DIM, dtype=np.float32)[:2])
  report = _apply(run, "directions", _options(
      tmp_path, method="labels", threshold=float(np.median(brightness)),
      classifier=_brightness_classifier(tmp_path / "bright.keras"),
      condition=f"{condition}:1"))
  # Half, but for a rounding at the median.
  assert abs(report["positives"] - 150) <= 2
  assert 0.5 <= report["directions"][0]["held_out_accuracy"] <= 1.0
  found = np.load(pathlib.Path(report["output_dir"]) / "directions.npy")
  assert found.shape == (1, W_DIM)
  assert abs(found[0, 1]) < 1e-6  # orthogonal to the condition, e_1


@pytest.mark.slow
def test_labels_conditioned_on_the_digits_and_a_file(runs, tmp_path):
  run = runs["stylegan2"]
  condition = tmp_path / "condition.npy"
  np.save(condition, np.eye(W_DIM, dtype=np.float32))
  report = _apply(run, "directions", _options(
      tmp_path, method="labels", classifier="width",
      condition=f"classes,{condition}:3"))
  out = pathlib.Path(report["output_dir"])
  found = np.load(out / "directions.npy")[0]
  conditions = np.load(out / "conditions.npy")
  classes = report["condition_classes"]
  # The file's direction, then one boundary per digit the samples hold
  # (each with enough samples on both sides).
  assert len(conditions) == 1 + len(classes) >= 2
  np.testing.assert_array_equal(conditions[0], np.eye(len(found))[3])
  assert all(c["samples"] >= 5 for c in classes)
  assert sum(c["samples"] for c in classes) <= 300
  assert np.abs(conditions @ found).max() < 1e-5
  # The digits' boundaries separate the digits better than chance.
  assert np.mean([c["held_out_balanced_accuracy"] for c in classes]) > 0.75
  assert report["condition"] == ["classes", f"{condition}:3"]


@pytest.mark.slow
def test_labels_from_inverted_examples(runs, mnist_dir, tmp_path):
  run = runs["stylegan2"]
  digits = sources.load(f"idx:{mnist_dir}", sources.Request(
      split="test[9000:]", image_size=32, channels=1, resize=True)).read(
          tf.range(100, dtype=tf.int64))
  labels = digits["label"].numpy()
  # 6 ones against 6 other digits.
  for side, chosen in (("ones", labels == 1), ("others", labels != 1)):
    (tmp_path / side).mkdir()
    for i in np.flatnonzero(chosen)[:6]:
      Image.fromarray(digits["image"].numpy()[i, ..., 0]).save(
          tmp_path / side / f"{i}.png")
  report = _apply(run, "directions", _options(
      tmp_path, method="labels", positive=str(tmp_path / "ones"),
      negative=str(tmp_path / "others")))
  assert report["positives"] == report["negatives"] == 6
  assert report["inversion"]["space"] == "z"
  assert 0.0 <= report["directions"][0]["held_out_accuracy"] <= 1.0
  found = np.load(pathlib.Path(report["output_dir"]) / "directions.npy")
  assert found.shape == (1, W_DIM)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["stylegan2", "dcgan"])
def test_an_edit_at_strength_zero_is_the_unedited_image(runs, tmp_path,
                                                        kind):
  run = runs[kind]
  found = _apply(run, "directions", _options(tmp_path / "d"))
  report = _apply(run, "edit", _options(
      tmp_path / "e", num=4, strengths=(-2.0, 2.0), strength_steps=5,
      direction=f"{found['output_dir']}/directions.npy:1"))
  out = pathlib.Path(report["output_dir"])
  saved = np.load(out / "edit.npz")
  np.testing.assert_array_equal(saved["strengths"], [-2, -1, 0, 1, 2])
  latents, images = saved["latents"], saved["images"]
  assert images.shape == (4, 5) + run.image_shape
  if kind == "stylegan2":
    unedited = run.split.render(tf.constant(latents), "w+", None).numpy()
  else:  # z itself: G's own images
    unedited = models.generate(run.state.generator_ema, latents, None,
                               training=False).numpy()
  np.testing.assert_allclose(images[:, 2], unedited, atol=1e-5)
  assert np.abs(images[:, 0] - images[:, 2]).max() > 1e-3
  assert len(list((out / "images").glob("*.png"))) == 20


@pytest.mark.slow
def test_edit_of_an_inverted_image_moves_only_its_layers(runs, mnist_dir,
                                                         tmp_path):
  run = runs["stylegan2"]
  digit = tasks.load_targets(run, tasks.Options(
      output_dir="", num=1, source=f"idx:{mnist_dir}",
      split="test[9000:]")).images[0]
  Image.fromarray(images_lib.to_uint8(digit)[..., 0]).save(tmp_path / "a.png")
  np.save(tmp_path / "d.npy", np.eye(W_DIM, dtype=np.float32)[:1])
  report = _apply(run, "edit", _options(
      tmp_path, input=str(tmp_path / "a.png"), layers="0:3",
      direction=str(tmp_path / "d.npy")))
  saved = np.load(pathlib.Path(report["output_dir"]) / "edit.npz")
  change = saved["edited_latents"] - saved["latents"][:, None]
  assert np.abs(change[:, :, :3, 0]).max() > 0
  np.testing.assert_array_equal(change[:, :, 3:], 0.0)
  np.testing.assert_array_equal(change[:, :, :, 1:], 0.0)
  assert report["layers"] == [0, 3] and "inversion" in report


def _bad_inputs(tmp_path: pathlib.Path) -> pathlib.Path:
  """Files for the refusals below."""
  np.save(tmp_path / "eight.npy", np.ones((2, 8), np.float32))
  np.save(tmp_path / "two.npy", np.eye(W_DIM, dtype=np.float32)[:2])
  (tmp_path / "corrupt.npy").write_bytes(b"not an array")
  (tmp_path / "empty").mkdir()
  (tmp_path / "broken").mkdir()
  (tmp_path / "broken" / "0.png").write_bytes(b"not a png")
  return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("kind,task,settings,message", [
    ("stylegan2", "directions", {"method": "pca"},
     "unknown direction method 'pca' in --method; valid: ganspace, labels, "
     "sefa"),
    ("stylegan2", "directions", {"layers": "3:9"},
     "--layers=3:9 is out of range; this model has 8 ws: give a:b with "
     "0 <= a < b <= 8"),
    ("dcgan", "edit", {"layers": "0:2", "direction": "<tmp>/two.npy"},
     "--layers=0:2 counts the ws of a mapping network, and "
     "model.architecture=dcgan has none"),
    ("stylegan2", "edit", {"direction": "<tmp>/missing.npy"},
     "--direction=<tmp>/missing.npy: <tmp>/missing.npy does not exist"),
    ("stylegan2", "edit", {"direction": "<tmp>/corrupt.npy"},
     "--direction=<tmp>/corrupt.npy: <tmp>/corrupt.npy is not a .npy file"),
    ("stylegan2", "edit", {"direction": "<tmp>/eight.npy"},
     "--direction=<tmp>/eight.npy: <tmp>/eight.npy holds directions of D=8 "
     "numbers, and this model's w has D=16"),
    ("dcgan", "edit", {"direction": "<tmp>/two.npy"},
     "holds directions of D=16 numbers, and this model's z has D=100"),
    ("stylegan2", "edit", {"direction": "<tmp>/two.npy:5"},
     "--direction=<tmp>/two.npy:5 asks for direction 5, and <tmp>/two.npy "
     "holds K=2 (0 to 1)"),
    ("stylegan2", "directions", {"method": "labels", "positive": "<tmp>/empty",
                                 "negative": "<tmp>/broken"},
     "--positive=<tmp>/empty has no PNG or JPEG image"),
    ("stylegan2", "directions", {"method": "labels",
                                 "positive": "<tmp>/broken",
                                 "negative": "<tmp>/broken"},
     "<tmp>/broken/0.png is not an image that can be decoded"),
    ("stylegan2", "directions", {"method": "labels",
                                 "condition": "<tmp>/eight.npy"},
     "--condition=<tmp>/eight.npy: .* D=8 numbers"),
    ("stylegan2", "directions", {"method": "labels",
                                 "classifier": "<tmp>/thin.keras"},
     "--classifier=<tmp>/thin.keras is neither mnist, a measure (ink, "
     "slant, width) nor an existing .keras model file"),
    ("stylegan2", "directions", {"method": "labels", "attribute": 12},
     "--attribute=12 is out of range; the classifier mnist has 10 outputs"),
    ("stylegan2", "directions", {"method": "sefa", "condition": "classes"},
     "--condition is for --method=labels, and --method=sefa has no use for "
     "it: leave it out"),
    # The tiny DCGAN's samples all look like one digit.
    ("dcgan", "directions", {"method": "labels", "classifier": "width",
                             "condition": "classes"},
     "--condition=classes needs a digit with at least 5 samples and 5 of "
     "other digits, and the MNIST classifier reads 300 of the 300 samples "
     "as"),
    ("stylegan2", "directions", {"method": "labels", "condition": "clases"},
     "--condition=clases: clases does not exist; give a directions.npy of "
     "python -m trainer.apply directions, or classes"),
    ("stylegan2", "directions", {"method": "labels", "threshold": 1.0},
     "at least 5 latents on each side of the boundary, and 0 of 300"),
])
def test_bad_inputs_are_refused_before_writing(runs, tmp_path, kind, task,
                                               settings, message):
  place = str(_bad_inputs(tmp_path))
  settings = {k: v.replace("<tmp>", place) if isinstance(v, str) else v
              for k, v in settings.items()}
  with pytest.raises(UserError) as error:
    _apply(runs[kind], task, _options(tmp_path, **settings))
  expected = message.replace("<tmp>", place)
  if ".*" in expected:
    assert all(part in str(error.value) for part in expected.split(".*"))
  else:
    assert expected in str(error.value)
  assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_directions_and_edit_from_the_command_line(runs, tmp_path):
  workdir = pathlib.Path(runs["dcgan"].checkpoint).parents[1]
  out = tmp_path / "directions"
  code, _, err = run_command(
      sys.executable, "-m", "trainer.apply", "directions",
      f"--workdir={workdir}", "--method=sefa", "--num_directions=3",
      f"--output_dir={out}")
  assert code == 0, err[-3000:]
  assert np.load(out / "directions.npy").shape == (3, 100)
  code, line, err = run_command(
      sys.executable, "-m", "trainer.apply", "edit", f"--workdir={workdir}",
      f"--direction={out / 'directions.npy'}:2", "--strengths=-1,1",
      "--strength_steps=3", "--num=2", f"--output_dir={tmp_path / 'edit'}")
  assert code == 0, err[-3000:]
  assert json.loads(line.strip().splitlines()[-1])["task"] == "edit"
  np.testing.assert_array_equal(
      np.load(tmp_path / "edit" / "edit.npz")["strengths"], [-1, 0, 1])


# ------------------------------------------------------- fast: the measures


def _image(ink: np.ndarray) -> tf.Tensor:
  """An ink map [H, W] in [0, 1] as a batch of one image in [-1, 1]."""
  return tf.constant(2.0 * ink[None, :, :, None] - 1.0, tf.float32)


def test_the_measures_of_drawn_strokes():
  blank, full = np.zeros((16, 16)), np.ones((16, 16))
  assert measures.ink(_image(blank)).numpy()[0] == 0.0
  assert measures.ink(_image(full)).numpy()[0] == 1.0
  # A stroke from the bottom left to the top right leans right: one pixel
  # to the right per pixel up, a slant of 1; its mirror image -1.
  leaning = np.zeros((16, 16))
  for row in range(16):
    leaning[row, 15 - row] = 1.0
  assert abs(measures.slant(_image(leaning)).numpy()[0] - 1.0) < 1e-4
  assert abs(measures.slant(_image(leaning[:, ::-1])).numpy()[0] + 1.0) < 1e-4
  upright = np.zeros((16, 16))
  upright[2:14, 7] = 1.0
  assert abs(measures.slant(_image(upright)).numpy()[0]) < 1e-6
  # Width: the standard deviation of the ink's columns.
  narrow, wide = np.zeros((16, 16)), np.zeros((16, 16))
  narrow[:, 7:9] = 1.0
  wide[:, 2:14] = 1.0
  np.testing.assert_allclose(measures.width(_image(narrow)).numpy(), [0.5],
                             rtol=1e-4)
  np.testing.assert_allclose(measures.width(_image(wide)).numpy(),
                             [np.std(np.arange(2, 14))], rtol=1e-4)
  assert measures.width(_image(blank)).numpy()[0] == 0.0


@pytest.mark.slow
def test_labels_by_a_measure_split_the_samples_at_their_median(runs,
                                                               tmp_path):
  report = _apply(runs["stylegan2"], "directions", _options(
      tmp_path, method="labels", classifier="ink", num_samples=200))
  assert report["classifier"] == "ink"
  assert report["threshold_is"] == "the samples' median"
  assert abs(report["positives"] - 100) <= 2
  found = np.load(pathlib.Path(report["output_dir"]) / "directions.npy")
  assert found.shape == (1, W_DIM)
