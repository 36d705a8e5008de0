"""trainer.apply's tasks on small models trained here on real MNIST.

The models are trained for a few dozen steps: enough for the checks of
behaviour below (what each task computes and writes), not for good images.
BENCHMARKS.md has the quality figures of fully trained models.
"""

import dataclasses
import functools
import json
import pathlib
from typing import Iterator

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import cpu_strategy, load_config
from trainer.apply import images as images_lib
from trainer.apply import inversion
from trainer.apply import run as run_lib
from trainer.apply import tasks
from trainer.errors import UserError
from trainer import loop
from trainer import models

# Few steps of inversion: the tests check that it lowers the error.
_FAST = inversion.Settings(steps=40, restarts=2, learning_rate=0.05)


def _train(mnist_dir, workdir: pathlib.Path, num_classes: int) -> str:
  config = load_config("smoke", **{
      "data.source": f"idx:{mnist_dir}", "data.split": "test[:9000]",
      "model.g_width": 16, "model.d_width": 16, "model.num_classes":
      num_classes, "train.steps": 60, "train.batch_size": 32})
  # Trained on one replica (half the graph to build), used on one or two:
  # a checkpoint does not depend on the replica count.
  loop.run(config, str(workdir), cpu_strategy(1))
  return str(workdir)


@pytest.fixture(scope="module")
def runs(mnist_dir, tmp_path_factory) -> Iterator[dict[str, str]]:
  """Workdirs of an unconditional and a class-conditional model."""
  root = tmp_path_factory.mktemp("runs")
  yield {"unconditional": _train(mnist_dir, root / "dcgan", 0),
         "conditional": _train(mnist_dir, root / "cgan", 10)}
  _loaded.cache_clear()


@functools.cache
def _loaded(workdir: str, replicas: int) -> run_lib.TrainedRun:
  """One load of a run per strategy, shared: the tasks only read the run."""
  return run_lib.load(workdir, cpu_strategy(replicas))


def _load(runs, kind: str, replicas: int = 2) -> run_lib.TrainedRun:
  return _loaded(runs[kind], replicas)


def _options(tmp_path, **overrides) -> tasks.Options:
  return tasks.Options(**{"output_dir": str(tmp_path / "out"),
                          "inversion": _FAST, **overrides})


def _apply(runs, kind, task, options, replicas=2, run=None) -> dict:
  return tasks.TASKS.get(task)(run or _load(runs, kind, replicas),
                               cpu_strategy(replicas), options)


def _png(path) -> np.ndarray:
  return np.asarray(Image.open(path))


def _held_out(mnist_dir, **overrides) -> dict:
  """Options that take images the models did not train on."""
  return {"source": f"idx:{mnist_dir}", "split": "test[9000:]", **overrides}


# ------------------------------------------------------------------ sample


@pytest.mark.parametrize("kind", [
    "unconditional", pytest.param("conditional", marks=pytest.mark.slow)])
def test_sample_writes_generator_images_reproducibly(runs, tmp_path, kind):
  first = _apply(runs, kind, "sample", _options(tmp_path / "a", num=12))
  # Again, from a run loaded anew.
  again = _apply(runs, kind, "sample", _options(tmp_path / "b", num=12),
                 run=run_lib.load(runs[kind], cpu_strategy(2)))
  other = _apply(runs, kind, "sample",
                 _options(tmp_path / "c", num=12, seed=1))
  load = lambda r: np.load(pathlib.Path(r["output_dir"]) / "samples.npz")
  a, b, c = load(first), load(again), load(other)
  np.testing.assert_array_equal(a["images"], b["images"])
  assert not np.allclose(a["images"], c["images"])
  # The images are G_ema's on the saved latents (and labels).
  run = _load(runs, kind)
  labels = a["labels"] if kind == "conditional" else None
  np.testing.assert_allclose(
      a["images"], models.generate(run.state.generator_ema, a["z"], labels,
                                      training=False).numpy(), atol=1e-5)
  if kind == "conditional":
    np.testing.assert_array_equal(labels, np.arange(12) % 10)
  out = pathlib.Path(first["output_dir"])
  files = sorted((out / "images").glob("*.png"))
  assert len(files) == 12
  np.testing.assert_array_equal(_png(files[3]),
                                images_lib.to_uint8(a["images"][3])[..., 0])
  # 8 columns, 2 rows of 28x28 tiles with 1-pixel gaps.
  assert _png(out / "grid.png").shape == (2 * 28 + 1, 8 * 28 + 7)


def test_sample_truncation_and_label(runs, tmp_path):
  report = _apply(runs, "conditional", "sample",
                  _options(tmp_path, num=20, truncation=0.5, label=3))
  saved = np.load(pathlib.Path(report["output_dir"]) / "samples.npz")
  assert np.abs(saved["z"]).max() <= 0.5
  assert saved["z"].std() > 0.2  # redrawn inside, not clipped to the edge
  np.testing.assert_array_equal(saved["labels"], np.full(20, 3))


# ------------------------------------------------------------- interpolate


def test_slerp_keeps_the_ends_and_the_radius():
  rng = np.random.default_rng(0)
  z0, z1 = rng.standard_normal((2, 5, 64))
  z1 *= (np.linalg.norm(z0, axis=-1) / np.linalg.norm(z1, axis=-1))[:, None]
  path = tasks.slerp(z0, z1, np.linspace(0, 1, 7))  # [5, 7, 64]
  np.testing.assert_allclose(path[:, 0], z0, atol=1e-12)
  np.testing.assert_allclose(path[:, -1], z1, atol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(path, axis=-1),
                             np.linalg.norm(z0, axis=-1)[:, None] *
                             np.ones((1, 7)), rtol=1e-10)
  linear = 0.5 * (z0 + z1)  # the straight line dips inside the sphere
  assert np.all(np.linalg.norm(linear, axis=-1)
                < np.linalg.norm(path[:, 3], axis=-1))


def test_interpolate_writes_paths_as_grid_and_looping_gif(runs, tmp_path):
  report = _apply(runs, "unconditional", "interpolate",
                  _options(tmp_path, num=4, frames=6))
  out = pathlib.Path(report["output_dir"])
  grid = _png(out / "grid.png")
  assert grid.shape == (4 * 28 + 3, 6 * 28 + 5)
  gif = Image.open(out / "interpolation.gif")
  assert gif.n_frames >= 6 and gif.info.get("loop") == 0
  # Neighbouring frames of a path differ less than its two ends.
  tiles = grid[:28, :].astype(float)
  step = np.abs(tiles[:, :28] - tiles[:, 29:57]).mean()
  ends = np.abs(tiles[:, :28] - tiles[:, -28:]).mean()
  assert step < ends


# --------------------------------------------------------------- inversion


@pytest.mark.parametrize("task,kind", [
    pytest.param("inpaint", "unconditional", marks=pytest.mark.slow),
    ("superres", "unconditional"),
    pytest.param("transfer", "conditional", marks=pytest.mark.slow)])
def test_inversion_lowers_the_error_it_optimizes(runs, mnist_dir, tmp_path,
                                                 task, kind):
  report = _apply(runs, kind, task, _options(
      tmp_path, num=6, **_held_out(mnist_dir)))
  before = np.array(report["inversion"]["initial_error"])
  after = np.array(report["inversion"]["final_error"])
  assert before.shape == after.shape == (6,)
  assert np.all(after < 0.95 * before), (before, after)


@pytest.mark.slow
def test_inversion_does_not_depend_on_the_replica_count(runs, mnist_dir,
                                                        tmp_path):
  run = _load(runs, "unconditional", replicas=1)
  images = tasks.load_targets(run, _options(tmp_path, num=5,
                                        **_held_out(mnist_dir))).images
  weight = np.ones(images.shape[:3] + (1,), np.float32)
  results = [inversion.invert(
      cpu_strategy(replicas), _load(runs, "unconditional", replicas).split,
      images, weight, operator=lambda x: x, labels=None, latent_dim=100,
      settings=_FAST) for replicas in (1, 2)]
  np.testing.assert_allclose(results[0].final_error, results[1].final_error,
                             rtol=1e-4)
  np.testing.assert_allclose(results[0].latents, results[1].latents,
                             atol=1e-4)


@pytest.mark.slow
def test_inverting_in_groups_gives_the_same_result(runs, mnist_dir, tmp_path):
  run = _load(runs, "unconditional")
  images = tasks.load_targets(run, _options(tmp_path, num=5,
                                            **_held_out(mnist_dir))).images
  weight = np.ones(images.shape[:3] + (1,), np.float32)
  whole, grouped = (inversion.invert(
      cpu_strategy(2), run.split, images, weight,
      operator=lambda x: x, labels=None, latent_dim=100,
      settings=dataclasses.replace(_FAST, max_latents=latents))
      for latents in (1024, 4))  # 4 latents: 2 images (2 starts each) a group
  np.testing.assert_allclose(whole.final_error, grouped.final_error,
                             rtol=1e-4)
  np.testing.assert_allclose(whole.images, grouped.images, atol=1e-3)
  # The last group holds one image, so its batch has another shape, whose
  # kernels may round differently. 40 steps of Adam carry last-digit
  # differences along directions that hardly change G's image: 1e-3 of that
  # latent's norm was seen, with its image within 2.3e-4 and its error within
  # 1e-6. Another image's start or target would differ by about the norm.
  differ = np.linalg.norm(whole.latents - grouped.latents, axis=1)
  assert np.all(differ <= 1e-2 * np.linalg.norm(whole.latents, axis=1)), (
      differ)


def test_inpaint_keeps_known_pixels_and_scores_the_hole(runs, mnist_dir,
                                                        tmp_path):
  report = _apply(runs, "unconditional", "inpaint", _options(
      tmp_path, num=4, **_held_out(mnist_dir, first=10)))
  assert report["hole_fraction"] == pytest.approx(0.25)
  assert report["images"]["indices"] == [10, 13]
  quality = report["quality_on_hole"]
  assert set(quality) == {"gan", "mean_fill", "diffusion_fill"}
  for scores in quality.values():
    assert np.isfinite(scores["psnr"]) and -1 <= scores["ssim"] <= 1
  out = pathlib.Path(report["output_dir"])
  truth, result = _png(out / "input.png"), _png(out / "result.png")
  known = images_lib.MASKS.get("center")(1, 28, 0)[0, ..., 0] == 1
  tile = (slice(0, 28), slice(0, 28))  # the first image
  np.testing.assert_array_equal(truth[tile][known], result[tile][known])
  assert np.any(truth[tile][~known] != result[tile][~known])
  assert _png(out / "comparison.png").shape == (4 * 29 - 1, 4 * 29 - 1)


@pytest.mark.slow
def test_inpaint_reads_a_png_and_a_mask_png(runs, tmp_path, mnist_dir):
  digit = tasks.load_targets(_load(runs, "unconditional"), _options(
      tmp_path, num=1, **_held_out(mnist_dir))).images[0]
  Image.fromarray(images_lib.to_uint8(digit)[..., 0]).save(
      tmp_path / "digit.png")
  hole = np.zeros((28, 28), np.uint8)
  hole[:, 20:] = 255  # white: the hole
  Image.fromarray(hole).save(tmp_path / "mask.png")
  report = _apply(runs, "unconditional", "inpaint", _options(
      tmp_path, input=str(tmp_path / "digit.png"),
      mask=str(tmp_path / "mask.png")))
  assert report["images"] == {"input": str(tmp_path / "digit.png")}
  assert report["hole_fraction"] == pytest.approx(8 / 28)


@pytest.mark.slow
def test_superres_matches_the_low_resolution_input(runs, mnist_dir, tmp_path):
  report = _apply(runs, "unconditional", "superres", _options(
      tmp_path, num=4, factor=4, **_held_out(mnist_dir)))
  assert report["low_resolution"] == [7, 7]
  assert set(report["quality"]) == {"gan", "bicubic"}
  # A 7x7 PNG is enlarged as it is: there is no truth to compare with.
  low = np.full((7, 7), 40, np.uint8)
  low[2:5, 3] = 250
  Image.fromarray(low).save(tmp_path / "low.png")
  report = _apply(runs, "unconditional", "superres", _options(
      tmp_path / "png", input=str(tmp_path / "low.png"), factor=4))
  assert "quality" not in report
  result = _png(pathlib.Path(report["output_dir"]) / "result.png")
  assert result.shape == (28, 28)
  # The result, shrunk again, is close to the input (the fit it optimized).
  shrunk = images_lib.downsample(tf.constant(images_lib.from_uint8(
      result[None, ..., None])), 4).numpy()
  error = np.mean((shrunk - images_lib.from_uint8(low[None, ..., None]))**2)
  assert error == pytest.approx(report["inversion"]["final_error"][0],
                                abs=0.01)


def test_transfer_redraws_each_image_as_every_class(runs, mnist_dir,
                                                    tmp_path):
  report = _apply(runs, "conditional", "transfer", _options(
      tmp_path, num=3, **_held_out(mnist_dir)))
  grid = _png(pathlib.Path(report["output_dir"]) / "transfer.png")
  assert grid.shape == (3 * 29 - 1, 12 * 29 - 1)
  # Under its own class the latent gives back the reconstruction.
  for row, label in enumerate(report["source_labels"]):
    tile = lambda col: grid[row * 29:row * 29 + 28, col * 29:col * 29 + 28]
    np.testing.assert_array_equal(tile(1), tile(2 + label))
  assert report["classifier"].startswith("mnist_classifier")
  assert 0 <= report["target_class_accuracy"] <= 1


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("task,kind,overrides,message", [
    ("transfer", "unconditional", {}, "needs a class-conditional model"),
    ("sample", "unconditional", {"label": 3}, "--label=3 is for class"),
    ("sample", "conditional", {"label": 10}, "classes 0 to 9"),
    ("inpaint", "unconditional", {"mask": "middle"}, "center, left_half"),
    ("superres", "unconditional", {"factor": 3}, "valid: 2, 4"),
    ("inpaint", "unconditional", {"first": 995, "num": 10}, "has 1000"),
    ("inpaint", "unconditional",
     {"inversion": inversion.Settings(max_latents=0)}, "--max_latents=0"),
    ("sample", "unconditional", {"num": 0}, "--num=0 is out of range"),
    ("interpolate", "unconditional", {"frames": 1}, "--frames=1 is out"),
    ("sample", "unconditional", {"truncation": -1.0}, "--truncation=-1.0"),
])
def test_bad_options_are_refused_with_a_clear_message(
    runs, mnist_dir, tmp_path, task, kind, overrides, message):
  with pytest.raises(UserError, match=message.replace("-", r"\-")):
    _apply(runs, kind, task, _options(
        tmp_path, **{**_held_out(mnist_dir), **overrides}))
  assert not (tmp_path / "out" / "report.json").exists()


@pytest.mark.slow
def test_inputs_of_the_wrong_size_are_refused_or_resized(runs, tmp_path):
  Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "big.png")
  options = _options(tmp_path, input=str(tmp_path / "big.png"))
  with pytest.raises(UserError, match="28x28"):
    _apply(runs, "unconditional", "inpaint", options)
  with pytest.raises(UserError, match="7x7 image to enlarge 4x, or a 28x28"):
    _apply(runs, "unconditional", "superres", options)
  mask = tmp_path / "mask.png"
  Image.fromarray(np.full((14, 14), 255, np.uint8)).save(mask)
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "ok.png")
  with pytest.raises(UserError, match="14x14"):
    _apply(runs, "unconditional", "inpaint", _options(
        tmp_path, input=str(tmp_path / "ok.png"), mask=str(mask)))
  resized = _apply(runs, "unconditional", "inpaint",
                   dataclasses.replace(options, resize=True))
  assert json.loads((pathlib.Path(resized["output_dir"]) /
                     "report.json").read_text())["task"] == "inpaint"


def test_conditional_png_input_needs_its_label(runs, tmp_path):
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
  with pytest.raises(UserError, match="--label="):
    _apply(runs, "conditional", "transfer",
           _options(tmp_path, input=str(tmp_path / "x.png")))
