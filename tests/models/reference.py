"""The reference networks' fixtures and the comparisons of ours with them.

tests/fixtures/reference/*.npz hold small networks built with the
published PyTorch code (StyleGAN2-ADA's and R3GAN's), every parameter and
buffer given a non-zero value, with fixed inputs and their outputs
(tools/make_reference_fixtures.py; no code of theirs is here). The
functions below assert that our networks, holding those parameters, give
the same outputs within TOLERANCE of the outputs' scale, in float32.
"""

import json
import pathlib

import keras
import numpy as np

from trainer.models import stylegan2

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "reference"
TOLERANCE = 1e-4

# The StyleGAN2 cases whose G ours computes (the fourth's G is 'resnet').
STYLEGAN2 = ["stylegan2_r16_uncond", "stylegan2_r32_cond",
             "stylegan2_r16_cond_clamp"]
R3GAN = ["r3gan_r16_uncond", "r3gan_r32_cond"]
# TensorFlow StyleGAN2 networks, as stylegan2-ada-pytorch's legacy.py reads
# them: TF_G.* (Gs) and TF_D.* hold their variables, not G.* and D.*.
TF1 = ["stylegan2_tf1_r16", "stylegan2_tf1_r32_gray_dorig"]


def case(name: str) -> tuple[np.lib.npyio.NpzFile, dict]:
  """A case's arrays and its config (the reference's kwargs, our fields)."""
  data = np.load(FIXTURES / f"{name}.npz")
  return data, json.loads(str(data["config"]))


def params(data, network: str) -> dict[str, np.ndarray]:
  """The state_dict of the case's network "G" or "D"."""
  prefix = f"{network}."
  return {key[len(prefix):]: data[key] for key in data.files
          if key.startswith(prefix)}


def tf1_variables(data, network: str) -> dict[str, np.ndarray]:
  """A TF1 case's variables of "G" (Gs, its components' under 'mapping/'
  and 'synthesis/') or "D", by TensorFlow name."""
  return params(data, f"TF_{network}")


def relative(ours: np.ndarray, theirs: np.ndarray) -> float:
  """The largest difference over the reference outputs' largest value."""
  return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def nhwc(images: np.ndarray) -> np.ndarray:
  return np.transpose(images, (0, 2, 3, 1))


def _conditional(config: dict) -> bool:
  return config["trainer_model"]["num_classes"] > 0


def assert_stylegan2_generator(g: keras.Model, data, config: dict) -> None:
  """Our G's mapping (ws, truncated ws) and synthesis give the case's."""
  mapping, synthesis = stylegan2.mapping_of(g), stylegan2.synthesis_of(g)
  inputs = [data["z"], data["labels"]] if _conditional(config) else data["z"]
  assert relative(mapping(inputs).numpy(), data["ws"]) < TOLERANCE
  truncated = mapping(inputs, psi=config["truncation_psi"]).numpy()
  assert relative(truncated, data["ws_psi"]) < TOLERANCE
  for mode in ("none", "const"):
    # Training mode: the raw images, which the reference returns (ours are
    # clipped to [-1, 1] in inference mode); the noise is the mode's.
    images = synthesis(data["ws"], training=True, noise_mode=mode).numpy()
    reference = nhwc(data[f"img_noise_{mode}"])
    assert relative(images, reference) < TOLERANCE, mode
  # A batch of one: one grouped convolution per layer, or scaled.
  one = synthesis(data["ws"][:1], training=True, noise_mode="const").numpy()
  assert relative(one, nhwc(data["img_noise_const"][:1])) < TOLERANCE


def assert_r3gan_generator(g: keras.Model, data, config: dict) -> None:
  """Our G's raw images (training mode) are the case's."""
  z = [data["z"], data["labels"]] if _conditional(config) else data["z"]
  images = g(z, training=True).numpy()
  assert relative(images, nhwc(data["img"])) < TOLERANCE


def assert_discriminator(d: keras.Model, data, config: dict) -> None:
  """Our D's logits are the case's, for its 8 images and their first 4."""
  images = nhwc(data["D_img"])
  conditional = _conditional(config)
  inputs = [images, data["D_labels"]] if conditional else images
  logits = d(inputs, training=False).numpy()[:, 0]
  assert relative(logits, data["D_logits"].reshape(-1)) < TOLERANCE
  first = [x[:4] for x in inputs] if conditional else images[:4]
  logits = d(first, training=False).numpy()[:, 0]
  assert relative(logits, data["D_logits_first4"].reshape(-1)) < TOLERANCE
