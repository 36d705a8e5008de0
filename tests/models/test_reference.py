"""Our StyleGAN2 and R3GAN compute the reference networks' functions.

Loaded with trainer.convert.weights from tests/fixtures/reference/*.npz
(tests/models/reference.py), our networks give the reference outputs
within 1e-4 of the outputs' scale, in float32.
"""

import numpy as np
import pytest

from tests.conftest import load_config
from tests.models import reference
from trainer import models
from trainer.convert import pickles
from trainer.convert import tf1
from trainer.convert import weights


def _build(family: str, fields: dict, **extra):
  config = load_config(**{f"model.{k}": v for k, v in
                          {**fields, **extra}.items()})
  return models.ARCHITECTURES.get(family).build(config.model, "float32")


def _stylegan2(name: str, modconv: str = "auto"):
  data, config = reference.case(name)
  d_kwargs = config["D"]["kwargs"]
  g, d = _build("stylegan2", config["trainer_model"], modconv=modconv,
                mbstd_groups="strided",
                d_architecture=d_kwargs["architecture"],
                d_mapping_layers=d_kwargs["mapping_kwargs"]["num_layers"])
  return data, config, g, d


@pytest.mark.parametrize("modconv", ["scaled", "grouped"])
@pytest.mark.parametrize("name", reference.STYLEGAN2)
def test_stylegan2_generator(name, modconv):
  data, config, g, _ = _stylegan2(name, modconv)
  weights.stylegan2_generator(g, reference.params(data, "G"))
  reference.assert_stylegan2_generator(g, data, config)


@pytest.mark.parametrize("name", reference.STYLEGAN2 + [
    "stylegan2_r16_uncond_gresnet_dorig"])
def test_stylegan2_discriminator(name):
  data, config, _, d = _stylegan2(name)
  weights.stylegan2_discriminator(d, reference.params(data, "D"),
                                  config["trainer_model"]["image_size"])
  reference.assert_discriminator(d, data, config)


@pytest.mark.parametrize("name", reference.R3GAN)
def test_r3gan(name):
  data, config = reference.case(name)
  fields = config["trainer_model"]
  g, d = _build("r3gan", fields)
  size, blocks = fields["image_size"], fields["blocks_per_stage"]
  weights.r3gan_generator(g, reference.params(data, "G"), size, blocks)
  weights.r3gan_discriminator(d, reference.params(data, "D"), size, blocks)
  reference.assert_r3gan_generator(g, data, config)
  reference.assert_discriminator(d, data, config)


def _tf1_module(variables: dict[str, np.ndarray]) -> pickles.Module:
  return pickles.Module(kind="tf1", class_name="G_main", init_args=(),
                        init_kwargs={}, params=variables, attributes={},
                        children={}, source=None)


@pytest.mark.parametrize("name", reference.TF1)
def test_tensorflow_stylegan2_as_legacy_py_reads_it(name):
  data, config, g, d = _stylegan2(name)
  weights.stylegan2_generator(g, tf1.as_stylegan2_ada(
      _tf1_module(reference.tf1_variables(data, "G")), "G"))
  weights.stylegan2_discriminator(
      d, tf1.as_stylegan2_ada(_tf1_module(reference.tf1_variables(data, "D")),
                              "D"),
      config["trainer_model"]["image_size"])
  reference.assert_stylegan2_generator(g, data, config)
  reference.assert_discriminator(d, data, config)


def test_a_tensorflow_variable_without_a_place_is_named():
  data, _ = reference.case("stylegan2_tf1_r16")
  variables = reference.tf1_variables(data, "G")
  variables["synthesis/8x8/Conv2/weight"] = np.zeros([3, 3, 32, 32])
  with pytest.raises(weights.WeightMismatch,
                     match="Gs: the variable synthesis/8x8/Conv2/weight"):
    tf1.as_stylegan2_ada(_tf1_module(variables), "G")


def test_a_parameter_of_the_wrong_shape_is_named():
  data, _, g, _ = _stylegan2("stylegan2_r16_uncond")
  params = reference.params(data, "G")
  params["mapping.fc1.weight"] = params["mapping.fc1.weight"][:, :-1]
  with pytest.raises(weights.WeightMismatch, match="mapping.fc1.weight"):
    weights.stylegan2_generator(g, params)
  params = reference.params(data, "G")
  params["synthesis.b8.extra"] = np.zeros(3)
  with pytest.raises(weights.WeightMismatch, match="synthesis.b8.extra"):
    weights.stylegan2_generator(g, params)
