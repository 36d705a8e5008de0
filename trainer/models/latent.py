"""G seen as a mapping z -> w and a synthesis w -> images.

What works in G's latent spaces (the path-length penalty; inversion,
truncation and mixing in trainer.apply) reads G through this split, so it
needs no knowledge of the family. A family without a mapping network has
w = z.

The latent spaces a latent can be given in (`ws_of`):
  "z":  z [B, latent_dim], G's input; mapped to w by to_w.
  "w":  one w [B, w_dim] for every synthesis layer (a family with a mapping
        network only).
  "w+": ws [B, num_ws, w_dim], one w per synthesis layer (idem).
"""

import dataclasses
import functools
from typing import Callable

import keras
import tensorflow as tf

from trainer.models import example_draws
from trainer.models import stylegan2

# The latent spaces of ws_of, and of inversion in trainer.apply.
SPACES = ("z", "w", "w+")


@dataclasses.dataclass(frozen=True)
class LatentSplit:
  """G(z | labels) = synthesize(to_w(z, labels), labels, noise_of=z).

  Attributes:
    space: what w is: "z" (no mapping network) or "w+" (ws
      [B, num_ws, w_dim], one w per synthesis layer).
    to_w: (z [B, latent_dim], labels [B] or None, training) -> w.
    synthesize: (w, labels or None, training, *, noise_mode="random",
      noise_of=None) -> images [B, H, W, C]. For a family with noise inputs,
      noise_mode "random" draws them per example from the bits of noise_of
      [B, ...] (default w; G draws them from z), "const" takes one fixed
      draw (the image is then a function of w alone), "none" adds none.
      Families without noise inputs ignore both.
    num_ws: ws per image in "w+"; 0 without a mapping network.
    w_avg: the moving average of w [w_dim] that truncation moves toward;
      None without a mapping network.
    latent_weights: (layers: range) -> A [rows, latent width], the weights
      of the linear maps through which the latent enters G, stacked (the A
      of closed-form factorization, trainer/apply/directions.py): with a
      mapping network, the affine maps from w to the styles of the layers
      that read ws[layers]; without, the rows on z of the kernel of G's
      first layer that has one, transposed (`layers` is not used).
    first_features: (z, labels or None) -> the activations [B, F] of that
      first layer, flattened; None with a mapping network.
  """
  space: str
  to_w: Callable[[tf.Tensor, tf.Tensor | None, bool], tf.Tensor]
  synthesize: Callable[..., tf.Tensor]
  num_ws: int = 0
  w_avg: tf.Variable | None = None
  latent_weights: Callable[[range], tf.Tensor] | None = None
  first_features: Callable[[tf.Tensor, tf.Tensor | None],
                           tf.Tensor] | None = None

  @property
  def has_mapping(self) -> bool:
    """Whether G has a mapping network (and so the spaces w and w+)."""
    return self.space == "w+"

  def truncated_w(self, z: tf.Tensor, labels: tf.Tensor | None, *,
                  psi: float | tf.Tensor = 1.0, cutoff: int | None = None,
                  training: bool = False) -> tf.Tensor:
    """to_w(z, labels), truncated toward w_avg by psi (truncate).

    psi 1 (a Python number) leaves w as it is; a tensor psi (a served
    input) is always applied.
    """
    w = self.to_w(z, labels, training)
    if not isinstance(psi, (int, float)) or psi != 1:
      w = self.truncate(w, psi, cutoff)
    return w

  def generate(self, z: tf.Tensor, labels: tf.Tensor | None, *,
               psi: float | tf.Tensor = 1.0, cutoff: int | None = None,
               training: bool = False,
               noise_mode: str = "random") -> tf.Tensor:
    """G(z | labels) with its ws truncated_w: images [B, H, W, C].

    With psi 1 and noise_mode "random", G itself: the noise is G's, drawn
    from z; "const" and "none" as `synthesize`.
    """
    w = self.truncated_w(z, labels, psi=psi, cutoff=cutoff,
                         training=training)
    return self.synthesize(w, labels, training, noise_mode=noise_mode,
                           noise_of=z)

  def truncate(self, ws: tf.Tensor, psi: float | tf.Tensor,
               cutoff: int | None = None) -> tf.Tensor:
    """ws [B, num_ws, w_dim] moved toward w_avg (stylegan2.truncate)."""
    self._require_mapping("truncation toward w_avg")
    return stylegan2.truncate(ws, self.w_avg, psi, cutoff)

  def mix(self, ws: tf.Tensor, other: tf.Tensor,
          layers: range) -> tf.Tensor:
    """ws [B, num_ws, w_dim] with other's ws[layers] (stylegan2.mix)."""
    self._require_mapping("style mixing")
    return stylegan2.mix(ws, other, layers)

  def ws_of(self, latents: tf.Tensor, space: str,
            labels: tf.Tensor | None) -> tf.Tensor:
    """What the synthesis takes for latents given in `space` (SPACES).

    "z" goes through the mapping (in inference mode), "w" is repeated for
    every layer, "w+" is taken as it is.
    """
    if space == "z":
      return self.to_w(latents, labels, False)
    self._require_mapping(f"space {space!r}")
    if space == "w":  # [B, w_dim] -> [B, num_ws, w_dim]
      return tf.tile(latents[:, None, :], [1, self.num_ws, 1])
    if space == "w+":
      return latents
    raise ValueError(f"unknown latent space {space!r}; valid: "
                     f"{', '.join(SPACES)}")

  def render(self, latents: tf.Tensor, space: str,
             labels: tf.Tensor | None) -> tf.Tensor:
    """Images [B, H, W, C] of latents in `space`, in inference mode.

    With the fixed noise draw, so that an image is a function of its
    latent alone: what inversion optimises and mixing compares.
    """
    return self.synthesize(self.ws_of(latents, space, labels), labels, False,
                           noise_mode="const")

  def _require_mapping(self, what: str) -> None:
    if not self.has_mapping:
      raise ValueError(f"{what} needs a mapping network; this G has none")


def _inputs(x: tf.Tensor, labels: tf.Tensor | None):
  return x if labels is None else [x, labels]


def _first_kernel(generator: keras.Model) -> tuple[keras.layers.Layer,
                                                   tf.Variable]:
  """G's first layer with a 2-D kernel (the layer that takes z; a
  conditional G concatenates its label embedding after z) and the kernel
  [inputs, features]."""
  for layer in generator.layers:
    for weight in layer.weights:
      if weight.path.endswith("kernel") and len(weight.shape) == 2:
        return layer, weight
  raise ValueError(f"{generator.name} has no layer with a 2-D kernel")


def no_mapping(generator: keras.Model) -> LatentSplit:
  """The split of a G without a mapping network: w is z."""
  layer, kernel = _first_kernel(generator)
  latent_dim = generator.inputs[0].shape[-1]

  @functools.cache
  def head() -> keras.Model:  # built once, when first asked for
    return keras.Model(generator.inputs, layer.output)

  def first_features(z, labels):
    features = head()(_inputs(z, labels), training=False)
    return tf.reshape(features, [tf.shape(features)[0], -1])  # [B, F]

  return LatentSplit(
      space="z", to_w=lambda z, labels, training: z,
      synthesize=lambda w, labels, training, **noise: generator(
          _inputs(w, labels), training=training),
      latent_weights=lambda layers: tf.transpose(kernel[:latent_dim]),
      first_features=first_features)


def mapped(mapping: stylegan2.Mapping,
           synthesis: stylegan2.Synthesis) -> LatentSplit:
  """The split of a style-based G from its two halves."""

  def synthesize(ws, labels, training, noise_mode="random", noise_of=None):
    del labels  # they enter through the mapping
    seeds = None if noise_of is None else example_draws.noise_seeds(noise_of)
    return synthesis(ws, training=training, noise_mode=noise_mode,
                     noise_seed=seeds)

  return LatentSplit(
      space="w+",
      to_w=lambda z, labels, training: mapping(_inputs(z, labels),
                                               training=training),
      synthesize=synthesize, num_ws=mapping.num_ws, w_avg=mapping.w_avg,
      latent_weights=synthesis.style_weights)
