"""The experiment files in configs/: every variant resolves, and the MNIST
ones train and evaluate on the embedded digits, offline, with no flag."""

import json
import sys

import pytest

from tests.conftest import REPO, TINY_FLAGS, run_command, saved_step
from trainer import config as config_lib
from trainer import defaults
from trainer import loop
from trainer.metrics import evaluator as evaluator_lib

# Each experiment file's variants ("" for its default).
VARIANTS = {
    "dcgan_mnist": ("", "smoke", "short", "limited", "stacked"),
    "cgan_mnist": ("", "smoke", "short"),
    "stylegan2": ("cifar32", "ffhq256", "ffhq1024", "mnist32", "smoke"),
    "r3gan": ("cifar32", "ffhq256", "ffhq1024", "mnist32", "smoke"),
}
# The variants that need data which cannot ship: a download or a folder.
EXTERNAL_DATA = {"cifar32", "ffhq256", "ffhq1024"}


def _config(name: str, variant: str, *, resolved: bool = True):
  config = config_lib.from_file(str(REPO / "configs" / f"{name}.py"),
                                variant or None)
  return config_lib.resolve(config) if resolved else config


def _leaves(config: dict, prefix: str = "") -> set[str]:
  return {leaf for key, value in config.items()
          for leaf in (_leaves(value, f"{prefix}{key}.")
                       if isinstance(value, dict) else [f"{prefix}{key}"])}


@pytest.mark.parametrize("name, variant", [
    (name, variant) for name, variants in VARIANTS.items()
    for variant in variants])
def test_every_variant_has_the_fields_of_the_base_and_its_architecture(
    name, variant):
  # Config files change the base's values and add no field, so every field
  # can be overridden on the command line and none is filled in later.
  config = _config(name, variant, resolved=False)
  base = defaults.base(config.model.architecture)
  assert _leaves(config.to_dict()) == _leaves(base.to_dict())


@pytest.mark.parametrize("name, variant", [
    (name, variant) for name, variants in VARIANTS.items()
    for variant in variants])
def test_every_variant_resolves_and_mnist_ones_read_the_embedded_digits(
    name, variant):
  config = _config(name, variant)
  if variant in EXTERNAL_DATA:
    assert not config.data.source.endswith("embedded:mnist")
    return
  assert config.data.source.endswith("embedded:mnist")
  training = loop.load_source(config)
  real = evaluator_lib.real_source(config)
  # Stacked MNIST draws its triples of digits from the 10,000.
  assert training.num_examples == {"limited": 1000, "stacked": 128_000}.get(
      variant, 10_000)
  assert real.num_examples == (
      10_000 if variant == "limited" else training.num_examples)
  assert real.image_shape == training.image_shape == (
      config.model.image_size, config.model.image_size,
      config.model.channels)


@pytest.mark.slow
def test_the_main_command_with_no_flags_trains_on_the_embedded_digits(
    tmp_path):
  """The README's main command, made small: no --config, no data flag."""
  code, _, stderr = run_command(
      sys.executable, "-m", "trainer.main", "--strategy=mirrored",
      "--config.train.steps=2", "--config.train.steps_per_loop=1",
      *TINY_FLAGS, cwd=tmp_path)
  assert code == 0, stderr
  workdir = tmp_path / "runs" / "dcgan_mnist"
  saved = json.loads((workdir / "config.json").read_text())
  assert (saved["data"]["source"], saved["data"]["split"]) == (
      "embedded:mnist", "test")
  assert saved_step(workdir / "checkpoints") == 2
