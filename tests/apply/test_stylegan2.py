"""trainer.apply in w: truncation, inversion in z, w and w+, style mixing.

On a tiny StyleGAN2 trained here for 2 steps on real MNIST. Its G_ema's
w_avg is set to a random vector once loaded, so that the average w is not
the near-zero one of 2 steps and truncation toward it shows.
"""

import json
import pathlib
import sys

import numpy as np
import pytest
from PIL import Image
import tensorflow as tf

from tests.conftest import TINY_STYLEGAN2, cpu_strategy, load_config
from tests.conftest import run_command
from tests.conftest import functions_run_eagerly
from trainer.apply import directions as directions_lib
from trainer.apply import images as images_lib
from trainer.apply import inversion
from trainer.apply import run as run_lib
from trainer.apply import tasks
from trainer.bench import mix_quality
from trainer.errors import UserError
from trainer import loop
from trainer import models

# A StyleGAN2 trained here, then searched in z, w and w+: tens of seconds.
pytestmark = pytest.mark.slow

_FAST = inversion.Settings(steps=40, restarts=2, learning_rate=0.05)
NUM_WS, W_DIM, LATENT_DIM = 8, 16, 8


def _trained(mnist_dir, workdir: pathlib.Path,
             **overrides) -> run_lib.TrainedRun:
  """The tiny StyleGAN2 after 2 steps, op by op (faster than building
  their graph), on one device (eager execution cannot gather from
  replicas); loaded on two replicas."""
  with functions_run_eagerly():
    loop.run(load_config("smoke", **{
        **TINY_STYLEGAN2, "data.source": f"idx:{mnist_dir}",
        "data.split": "test[:9000]", "train.steps": 2, **overrides}),
             str(workdir), cpu_strategy(1))
  return run_lib.load(str(workdir), cpu_strategy(2))


@pytest.fixture(scope="module")
def run(mnist_dir, tmp_path_factory) -> run_lib.TrainedRun:
  loaded = _trained(mnist_dir, tmp_path_factory.mktemp("stylegan2") / "run")
  loaded.split.w_avg.assign(
      np.random.default_rng(0).normal(size=W_DIM).astype(np.float32))
  return loaded


def _options(tmp_path, **overrides) -> tasks.Options:
  return tasks.Options(**{"output_dir": str(tmp_path / "out"),
                          "inversion": _FAST, **overrides})


def _apply(run, task: str, options: tasks.Options) -> dict:
  return tasks.TASKS.get(task)(run, cpu_strategy(2), options)


def _saved(report: dict, name: str) -> dict[str, np.ndarray]:
  with np.load(pathlib.Path(report["output_dir"]) / name) as f:
    return {k: f[k] for k in f.files}


def _spread(images: np.ndarray) -> float:
  """How much images [N, ...] differ from one another."""
  return float(images.std(axis=0).mean())


def test_psi_one_is_g_and_psi_zero_is_the_average_w(run, tmp_path):
  plain = _saved(_apply(run, "sample", _options(tmp_path / "1", num=6)),
                 "samples.npz")
  np.testing.assert_allclose(plain["images"], models.generate(
      run.state.generator_ema, plain["z"], None, training=False).numpy(),
                             atol=1e-5)
  report = _apply(run, "sample", _options(tmp_path / "0", num=6, psi=0.0))
  assert report["psi"] == 0.0
  average = _saved(report, "samples.npz")
  np.testing.assert_array_equal(average["z"], plain["z"])
  # Every image is the average w's, with its z's noise (as G draws it).
  split = run.split
  ws = tf.tile(tf.convert_to_tensor(split.w_avg)[None, None],
               [6, NUM_WS, 1])
  np.testing.assert_allclose(average["images"], split.synthesize(
      ws, None, False, noise_of=tf.constant(plain["z"])).numpy(), atol=1e-5)
  assert _spread(average["images"]) < 0.2 * _spread(plain["images"])


def test_noise_mode_const_is_the_fixed_draw_and_none_adds_none(run,
                                                              tmp_path):
  plain = _saved(_apply(run, "sample", _options(tmp_path / "r", num=4)),
                 "samples.npz")
  ws = run.split.to_w(tf.constant(plain["z"]), None, False)
  for mode in ("const", "none"):
    report = _apply(run, "sample", _options(tmp_path / mode, num=4,
                                            noise_mode=mode))
    assert report["noise_mode"] == mode
    images = _saved(report, "samples.npz")["images"]
    # A function of w alone: the synthesis of the same ws with that noise.
    np.testing.assert_allclose(images, run.split.synthesize(
        ws, None, False, noise_mode=mode).numpy(), atol=1e-5)
    assert np.abs(images - plain["images"]).max() > 1e-3


def test_a_truncation_cutoff_truncates_the_coarse_ws_only(run, tmp_path):
  z = tf.random.stateless_normal([4, LATENT_DIM], [0, 1])
  split = run.split
  ws = split.to_w(z, None, False)
  truncated = split.truncated_w(z, None, psi=0.0, cutoff=3).numpy()
  np.testing.assert_allclose(truncated[:, :3],
                             np.broadcast_to(split.w_avg.numpy(), (4, 3,
                                                                   W_DIM)))
  np.testing.assert_array_equal(truncated[:, 3:], ws.numpy()[:, 3:])
  report = _apply(run, "sample", _options(tmp_path, num=4, psi=0.0,
                                          truncation_cutoff=3))
  assert report["truncation_cutoff"] == 3


def test_mix_takes_coarse_ws_from_the_first_and_fine_from_the_second(
    run, tmp_path):
  report = _apply(run, "mix", _options(tmp_path, num=3, cutoff=3))
  assert report["cutoff"] == 3 and report["num_ws"] == NUM_WS
  saved = _saved(report, "mix.npz")
  first, second, mixed = (saved[k] for k in ("first_ws", "second_ws",
                                             "mixed_ws"))
  assert first.shape == second.shape == mixed.shape == (3, NUM_WS, W_DIM)
  assert not np.allclose(first, second)  # two latents
  np.testing.assert_array_equal(mixed[:, :3], first[:, :3])
  np.testing.assert_array_equal(mixed[:, 3:], second[:, 3:])
  split = run.split
  np.testing.assert_allclose(saved["images"], split.render(
      tf.constant(mixed), "w+", None).numpy(), atol=1e-5)
  # Per row of the grid: first, second, mixed; the mix is neither.
  grid = np.asarray(Image.open(pathlib.Path(report["output_dir"])
                               / "grid.png")).astype(int)
  tile = lambda col: grid[:32, col * 33:col * 33 + 32]
  np.testing.assert_array_equal(tile(2),
                                images_lib.to_uint8(saved["images"][0])[..., 0])
  assert np.abs(tile(2) - tile(0)).mean() > 0
  assert np.abs(tile(2) - tile(1)).mean() > 0
  assert len(list((pathlib.Path(report["output_dir"])
                   / "images").glob("*.png"))) == 3


@pytest.mark.parametrize("space,shape", [("z", (LATENT_DIM,)),
                                         ("w", (W_DIM,)),
                                         ("w+", (NUM_WS, W_DIM))])
def test_inversion_lowers_its_error_in_every_space(run, mnist_dir, space,
                                                   shape):
  images = tasks.load_targets(run, tasks.Options(
      output_dir="", num=3, source=f"idx:{mnist_dir}",
      split="test[9000:]")).images
  weight = np.ones(images.shape[:3] + (1,), np.float32)
  settings = inversion.Settings(steps=40, restarts=1, space=space)
  result = inversion.invert(cpu_strategy(2), run.split, images, weight,
                            operator=lambda x: x, labels=None,
                            latent_dim=LATENT_DIM, settings=settings)
  assert result.latents.shape == (3,) + shape
  assert np.all(result.final_error < 0.95 * result.initial_error), (
      result.initial_error, result.final_error)
  # The images are those of the latents found, with G's fixed noise.
  rendered = run.split.render(tf.constant(result.latents), space,
                              None).numpy()
  np.testing.assert_allclose(result.images, rendered, atol=1e-4)
  if space != "z":  # one start: w_avg, where StyleGAN2's projector starts
    start = run.split.render(tf.convert_to_tensor(run.split.w_avg)[None],
                             "w", None).numpy()
    np.testing.assert_allclose(
        result.initial_error, np.mean((start - images)**2, axis=(1, 2, 3)),
        rtol=1e-4)


def test_inpaint_and_superres_search_w_plus(run, mnist_dir, tmp_path):
  for task in ("inpaint", "superres"):
    report = _apply(run, task, _options(
        tmp_path / task, num=2, factor=2, source=f"idx:{mnist_dir}",
        split="test[9000:]", inversion=inversion.Settings(
            steps=20, restarts=1, space="w+")))
    assert report["inversion"]["settings"]["space"] == "w+"
    assert np.all(np.array(report["inversion"]["final_error"])
                  < np.array(report["inversion"]["initial_error"]))


def _digit_pngs(run, mnist_dir, folder: pathlib.Path, first: int,
                count: int) -> pathlib.Path:
  """`count` held-out real digits from index `first`, as 28x28 PNGs (the
  model takes 32x32: read with --resize)."""
  folder.mkdir(parents=True)
  digits = tasks.load_targets(run, tasks.Options(
      output_dir="", num=count, first=first, source=f"idx:{mnist_dir}",
      split="test[9000:]", resize=True)).images
  for i, digit in enumerate(digits):
    small = tf.image.resize(digit, [28, 28], antialias=True).numpy()
    Image.fromarray(images_lib.to_uint8(small)[..., 0]).save(
        folder / f"{i}.png")
  return folder


def test_mix_of_two_inverted_images(run, mnist_dir, tmp_path):
  paths = [str(path) for path in sorted(_digit_pngs(
      run, mnist_dir, tmp_path / "digits", 0, 2).glob("*.png"))]
  report = _apply(run, "mix", _options(
      tmp_path, input=paths[0], mix_input=paths[1], resize=True,
      inversion=inversion.Settings(steps=20, restarts=1, space="w")))
  assert report["images"] == {"input": paths[:1], "mix_input": paths[1:]}
  assert report["layers"] == [4, NUM_WS] and report["cutoff"] == 4
  saved = _saved(report, "mix.npz")
  assert saved["mixed_ws"].shape == (1, NUM_WS, W_DIM)
  # --space=w: one w per image, in every layer; the mix has both.
  first, second = saved["first_ws"][0], saved["second_ws"][0]
  np.testing.assert_array_equal(first, np.broadcast_to(first[0], first.shape))
  np.testing.assert_array_equal(saved["mixed_ws"][0, :4], first[:4])
  np.testing.assert_array_equal(saved["mixed_ws"][0, 4:], second[4:])


def test_mix_transfers_the_chosen_layers_between_pairs_of_images(
    run, mnist_dir, tmp_path):
  inputs = _digit_pngs(run, mnist_dir, tmp_path / "inputs", 0, 3)
  mix_inputs = _digit_pngs(run, mnist_dir, tmp_path / "mix_inputs", 3, 3)
  report = _apply(run, "mix", _options(
      tmp_path, input=str(inputs), mix_input=str(mix_inputs), resize=True,
      directions=directions_lib.Settings(layers="2:5"),
      inversion=inversion.Settings(steps=20, restarts=1, space="w+")))
  assert report["layers"] == [2, 5] and report["cutoff"] is None
  assert report["images"]["mix_input"] == [
      str(mix_inputs / f"{i}.png") for i in range(3)]
  saved = _saved(report, "mix.npz")
  first, second, mixed = (saved[k] for k in ("first_ws", "second_ws",
                                             "mixed_ws"))
  assert mixed.shape == (3, NUM_WS, W_DIM)
  # ws 2, 3 and 4 of the --mix_input's, the others of the --input's.
  np.testing.assert_array_equal(mixed[:, 2:5], second[:, 2:5])
  np.testing.assert_array_equal(mixed[:, :2], first[:, :2])
  np.testing.assert_array_equal(mixed[:, 5:], first[:, 5:])
  # The reconstructions are G's images of the ws found, with its fixed
  # noise; the report's PSNR is theirs against the (resized) inputs.
  render = lambda ws: run.split.render(tf.constant(ws), "w+", None).numpy()
  np.testing.assert_allclose(saved["first_images"], render(first),
                             atol=1e-5)
  np.testing.assert_allclose(saved["second_images"], render(second),
                             atol=1e-5)
  np.testing.assert_allclose(saved["images"], render(mixed), atol=1e-5)
  psnr = report["reconstruction_psnr_per_image"]
  np.testing.assert_allclose(psnr["mix_input"], images_lib.psnr(
      saved["second_images"], saved["mix_inputs"]), rtol=1e-4)
  np.testing.assert_allclose(report["reconstruction_psnr"],
                             np.mean(psnr["input"] + psnr["mix_input"]))
  # Per row of the grid: input, its reconstruction, mix input, its
  # reconstruction, mixed; the reconstructions also as files.
  out = pathlib.Path(report["output_dir"])
  assert report["columns"] == ["input", "reconstruction", "mix_input",
                               "mix_reconstruction", "mixed"]
  grid = np.asarray(Image.open(out / "grid.png"))
  assert grid.shape == (3 * 32 + 2, 5 * 32 + 4)
  tile = lambda row, col: grid[row * 33:row * 33 + 32, col * 33:col * 33 + 32]
  for col, images in enumerate((saved["inputs"], saved["first_images"],
                                saved["mix_inputs"], saved["second_images"],
                                saved["images"])):
    np.testing.assert_array_equal(tile(1, col),
                                  images_lib.to_uint8(images[1])[..., 0])
  np.testing.assert_array_equal(
      np.asarray(Image.open(out / "reconstructions" / "000002_mix_input.png")),
      images_lib.to_uint8(saved["second_images"][2])[..., 0])
  assert len(list((out / "images").glob("*.png"))) == 3


def test_mix_quality_draws_the_pairs_of_a_mix_again_at_each_range(
    run, tmp_path):
  report = _apply(run, "mix", _options(tmp_path, num=4, cutoff=3))
  saved = _saved(report, "mix.npz")
  images = mix_quality.remixed(saved, run, cpu_strategy(2),
                               ["3:8", "0:8", "2:5"])
  # The mix's own range draws the mix; all of the ws, the second image.
  np.testing.assert_allclose(images["3:8"], saved["images"], atol=1e-5)
  np.testing.assert_allclose(images["0:8"], saved["second_images"],
                             atol=1e-5)
  first, second = saved["first_ws"], saved["second_ws"]
  middle = np.concatenate([first[:, :2], second[:, 2:5], first[:, 5:]], 1)
  np.testing.assert_allclose(images["2:5"], run.split.render(
      tf.constant(middle), "w+", None).numpy(), atol=1e-5)
  with pytest.raises(UserError, match="--layers=3:9 is out of range"):
    mix_quality.remixed(saved, run, cpu_strategy(2), ["3:9"])
  with pytest.raises(UserError, match=(
      r"the mix's ws are \[N, 8, 12\] and this run's G takes "
      r"\[N, 8, 16\]")):
    mix_quality.remixed({**saved, "first_ws": first[..., :12]}, run,
                        cpu_strategy(2), ["3:8"])
  # From the command line: the run's G at the checkpoint of the report.
  workdir = pathlib.Path(report["checkpoint"]).parents[1]
  code, out, err = run_command(
      sys.executable, "-m", "trainer.bench.mix_quality",
      f"--mix={report['output_dir']}/mix.npz", f"--workdir={workdir}",
      "--layers=3:8,0:8", "--strategy=one_device")
  assert code == 0, err[-3000:]
  line = json.loads(out.strip().splitlines()[-1])
  assert list(line) == ["3:8", "0:8"]
  assert line["0:8"]["ink"]["taken"] == pytest.approx(1.0, abs=1e-3)
  assert line["3:8"]["ink"]["taken"] == pytest.approx(mix_quality.quality(
      saved["first_images"], saved["second_images"], saved["images"]
  )["ink"]["taken"], abs=1e-3)


def test_mix_refuses_folders_of_different_counts(run, mnist_dir, tmp_path):
  inputs = _digit_pngs(run, mnist_dir, tmp_path / "inputs", 0, 2)
  mix_inputs = _digit_pngs(run, mnist_dir, tmp_path / "mix_inputs", 2, 3)
  with pytest.raises(UserError, match=(
      f"--input={inputs} has 2 images and --mix_input={mix_inputs} has 3; "
      "mix pairs them in name order: give as many")):
    _apply(run, "mix", _options(tmp_path, input=str(inputs),
                                mix_input=str(mix_inputs), resize=True))
  assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def conditional_run(mnist_dir, tmp_path_factory) -> run_lib.TrainedRun:
  """The tiny StyleGAN2 of `run`, class-conditional (10 digits)."""
  return _trained(mnist_dir, tmp_path_factory.mktemp("stylegan2_conditional")
                  / "run", **{"model.num_classes": 10})


def test_mix_inverts_each_image_under_its_own_class(conditional_run,
                                                     mnist_dir, tmp_path):
  paths = [str(path) for path in sorted(_digit_pngs(
      conditional_run, mnist_dir, tmp_path / "digits", 0, 2).glob("*.png"))]
  options = dict(input=paths[0], mix_input=paths[1], resize=True,
                 inversion=inversion.Settings(steps=5, restarts=1, space="z"))
  # z is searched under the label: the mix input's ws change with its class.
  second_ws = {}
  for mix_label in (3, 7):
    report = _apply(conditional_run, "mix", _options(
        tmp_path / str(mix_label), label=3, mix_label=mix_label, **options))
    assert report["labels"] == {"input": 3, "mix_input": mix_label}
    second_ws[mix_label] = _saved(report, "mix.npz")["second_ws"]
  assert not np.allclose(second_ws[3], second_ws[7])
  # Without --mix_label, --label's class for both.
  report = _apply(conditional_run, "mix", _options(tmp_path / "same",
                                                   label=3, **options))
  assert report["labels"] == {"input": 3, "mix_input": 3}
  np.testing.assert_array_equal(_saved(report, "mix.npz")["second_ws"],
                                second_ws[3])
  with pytest.raises(UserError, match=r"--mix_label=10 is out of range; "
                     r"this model draws classes 0 to 9"):
    _apply(conditional_run, "mix", _options(tmp_path / "bad", label=3,
                                            mix_label=10, **options))
  with pytest.raises(UserError, match=r"this model is class-conditional: "
                     r"pass the class of --input with --label"):
    _apply(conditional_run, "mix", _options(tmp_path / "bad", mix_label=2,
                                            **options))
  assert not (tmp_path / "bad").exists()


def test_inverting_for_edits_needs_the_class_of_a_conditional_model(
    conditional_run, tmp_path):
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "b.png")
  image = str(tmp_path / "b.png")
  for task, overrides, named in (
      ("edit", {"input": image}, "--input"),
      ("directions", {"directions": directions_lib.Settings(
          method="labels", positive=image, negative=image)},
       "--positive and --negative")):
    with pytest.raises(UserError, match=(
        f"this model is class-conditional: pass the class of {named} with "
        r"--label=<0 to 9>")):
      _apply(conditional_run, task, _options(tmp_path, **overrides))
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("task,overrides,message", [
    ("mix", {"mix_label": 2}, "--mix_label=2 is the class of --mix_input, "
     "and there is none: give --input and --mix_input"),
    ("mix", {"input": "<tmp>/b.png", "mix_input": "<tmp>/b.png",
             "mix_label": 2, "resize": True},
     "--mix_label=2 is for class-conditional models; this run's "
     "model.num_classes is 0"),
    ("sample", {"truncation_cutoff": 9},
     "--truncation_cutoff=9 is out of range; this model has 8 ws: it must "
     "be in [1, 8]"),
    ("mix", {"cutoff": 8}, "--cutoff=8 is out of range; .* in [1, 7]"),
    ("mix", {"input": "a.png"}, "give both --input .* and --mix_input"),
    ("mix", {"directions": directions_lib.Settings(layers="3:9")},
     "--layers=3:9 is out of range; this model has 8 ws: give a:b with "
     "0 <= a < b <= 8"),
    ("mix", {"cutoff": 2, "directions": directions_lib.Settings(
        layers="2:4")}, "--layers=2:4 and --cutoff=2 both choose the ws"),
    ("mix", {"input": "<tmp>/missing.png", "mix_input": "<tmp>/b.png"},
     "<tmp>/missing.png does not exist"),
    ("mix", {"input": "<tmp>/b.png", "mix_input": "<tmp>/b.png"},
     "<tmp>/b.png is 28x28 but the model takes 32x32 images; pass --resize"),
    ("inpaint", {"inversion": inversion.Settings(space="u")},
     "--space=u is not a latent space; valid: z, w, w+"),
    ("sample", {"psi": -0.5}, "--psi=-0.5 is out of range; it must be in "
     "[0, 1]"),
])
def test_bad_options_are_refused_before_writing(run, tmp_path, task,
                                                overrides, message):
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "b.png")
  overrides = {k: v.replace("<tmp>", str(tmp_path)) if isinstance(v, str)
               else v for k, v in overrides.items()}
  message = message.replace("<tmp>", str(tmp_path))
  with pytest.raises(UserError, match=message.replace("[", r"\[").replace(
      "]", r"\]").replace("+", r"\+").replace("-", r"\-")):
    _apply(run, task, _options(tmp_path, **overrides))
  assert not (tmp_path / "out").exists()
