"""Directions in a generator's latent space that each change one thing.

A direction is a unit vector of the latent space that edits move: w for a
G with a mapping network (stylegan2: the same direction is added to the w
of every layer that moves), z for one without (dcgan, r3gan). The tasks
`directions` and `edit` of trainer.apply find and use them. The methods
(METHODS, `--method`):

  sefa:     closed-form factorization (Shen & Zhou, "Closed-Form
            Factorization of Latent Semantics in GANs", CVPR 2021): the
            top eigenvectors of A^T A, where A stacks the weights through
            which the latent enters G (LatentSplit.latent_weights): the
            affine maps from w to the styles of the layers reading the ws
            of --layers, or the kernel of G's first layer on z. Along them
            those weights change their outputs most. No sampling.
  ganspace: principal components (Härkönen et al., "GANSpace: Discovering
            Interpretable GAN Controls", NeurIPS 2020) of sampled w; for a
            G without a mapping network, of the activations of its first
            layer over sampled z, each component taken back to z by least
            squares, as GANSpace does for BigGAN.
  labels:   the normal of a linear boundary between latents with and
            without an attribute (InterFaceGAN: Shen et al., "Interpreting
            the Latent Space of GANs for Semantic Face Editing", CVPR
            2020). The latents are G's samples scored by a classifier, or
            example images inverted. With conditions, their part is
            projected out, so that an edit keeps their attributes;
            `classes` conditions on the boundaries of each digit by the
            MNIST classifier, so that an edit keeps the digit.

Edits along them are in trainer/apply/editing.py.
"""

import dataclasses
import io
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from trainer.apply import images as images_lib
from trainer.apply import inversion as inversion_lib
from trainer.apply import measures
from trainer.apply.run import TrainedRun
from trainer import distribute
from trainer.errors import UserError
from trainer import features as features_lib
from trainer.models import latent as latent_lib
from trainer.registry import Registry

# Samples per direction in the grid of `directions`, and the directions
# shown at most (the strongest).
GRID_SAMPLES = 3
GRID_DIRECTIONS = 10
# PCA is an exact SVD up to this many features. Wider ones (a DCGAN's first
# layer has 12,544) take a randomized SVD (Halko, Martinsson & Tropp 2011)
# of the top components plus _OVERSAMPLING, with _POWER_ITERATIONS passes:
# an exact SVD of 10,000 such rows takes hours on a CPU.
_EXACT_PCA_WIDTH = 4096
_OVERSAMPLING = 10
_POWER_ITERATIONS = 4
# labels: the held-out share of each side, the fewest latents a side needs,
# and the logistic regression's L2 penalty (on standardized latents; it
# keeps the weights finite when the sides are separable) and Newton steps.
_HELD_OUT = 0.2
_MIN_PER_SIDE = 5
_L2 = 1e-3
_NEWTON_STEPS = 50


@dataclasses.dataclass(frozen=True)
class Settings:
  """The flags of `directions` and `edit` (docs/apply.md)."""
  method: str = "sefa"
  num_directions: int = 10  # directions kept, at most the latent's size
  layers: str = ""  # "a:b", the ws [a, b) that count; "" all of them
  num_samples: int = 10_000  # ganspace, labels: latents sampled
  strength: float = 3.0  # directions' grid: strengths from -s to s
  strengths: tuple[float, float] = (-3.0, 3.0)  # edit: first and last
  strength_steps: int = 7  # strengths per row, both ends included
  classifier: str = "mnist"  # labels: "mnist", a measure or a .keras file
  attribute: int = 0  # labels: the classifier's output read
  threshold: float = 0.5  # labels: a sample has the attribute above it
  positive: str = ""  # labels: a folder of images with the attribute
  negative: str = ""  # labels: a folder of images without it
  condition: str = ""  # labels: <file.npy>[:index] or classes, comma-separated
  direction: str = ""  # edit: <file.npy>[:index]

  def check(self) -> None:
    for name, minimum in (("num_directions", 1), ("strength_steps", 2),
                          ("num_samples", 2 * _MIN_PER_SIDE)):
      if getattr(self, name) < minimum:
        raise UserError(f"--{name}={getattr(self, name)} is out of range; "
                        f"it must be >= {minimum}")
    if not self.strength > 0:
      raise UserError(f"--strength={self.strength} is out of range; it "
                      "must be > 0")
    for name in ("condition", "positive", "negative"):
      if getattr(self, name) and self.method != "labels":
        raise UserError(f"--{name} is for --method=labels, and --method="
                        f"{self.method} has no use for it: leave it out")
    if bool(self.positive) != bool(self.negative):
      raise UserError("labels from example images needs both --positive (a "
                      "folder of images with the attribute) and --negative "
                      "(one of images without it)")


@dataclasses.dataclass(frozen=True)
class Request:
  """What finding and using directions reads."""
  run: TrainedRun
  strategy: tf.distribute.Strategy
  split: latent_lib.LatentSplit
  settings: Settings
  layers: range  # the ws that count; empty without a mapping network
  seed: int
  labels_for: Callable[[int], np.ndarray | None]  # of that many latents
  inversion: inversion_lib.Settings  # of example images
  resize: bool  # example images that do not fit are resized

  @property
  def space(self) -> str:
    """Where directions live: "w" (a mapping network) or "z"."""
    return "w" if self.split.has_mapping else "z"

  @property
  def size(self) -> int:
    """D, the numbers of a direction."""
    if self.split.has_mapping:
      return int(self.split.w_avg.shape[0])
    return self.run.config.model.latent_dim


@dataclasses.dataclass(frozen=True)
class Found:
  """Directions [K, D] (unit rows, the strongest first), per direction
  what ranks it, and the method's details for directions.json; labels:
  the directions [C, D] projected out (conditions.npy), if any."""
  vectors: np.ndarray
  scores: list[dict]
  details: dict
  conditions: np.ndarray | None = None


Method = Callable[[Request], Found]
METHODS: Registry[Method] = Registry("direction method", "--method")


def find(request: Request) -> Found:
  """The directions of --method."""
  return METHODS.get(request.settings.method)(request)


def description(request: Request, found: Found) -> dict:
  """directions.json: the method, the space, the layers and the scores."""
  layers = request.layers
  return {"method": request.settings.method, "space": request.space,
          "layers": [layers.start, layers.stop] if layers else None,
          "num_ws": request.split.num_ws, "step": request.run.step,
          "checkpoint": request.run.checkpoint,
          "directions": [{"index": i, **score}
                         for i, score in enumerate(found.scores)],
          **found.details}


# ------------------------------------------------------------------- sefa


@METHODS.register("sefa")
def _sefa(request: Request) -> Found:
  weights = request.split.latent_weights(request.layers).numpy()
  values, vectors = sefa(weights, request.settings.num_directions)
  return Found(vectors, [{"eigenvalue": float(v)} for v in values], {})


def sefa(weights: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
  """The `count` largest eigenvalues of A^T A and their unit eigenvectors.

  Args:
    weights: A [rows, D].
    count: how many; at most D are returned.

  Returns:
    eigenvalues [K], largest first, and eigenvectors [K, D].
  """
  weights = weights.astype(np.float64)
  values, vectors = np.linalg.eigh(weights.T @ weights)  # ascending
  order = np.argsort(values)[::-1][:count]
  return values[order], _signed(vectors[:, order].T)


def _signed(vectors: np.ndarray) -> np.ndarray:
  """Rows [K, D] with their largest-magnitude entry positive.

  An eigenvector's or a component's sign is arbitrary; this one makes the
  files the same from run to run.
  """
  largest = vectors[np.arange(len(vectors)),
                    np.abs(vectors).argmax(axis=1)]
  return vectors * np.where(largest < 0, -1.0, 1.0)[:, None]


# --------------------------------------------------------------- ganspace


@METHODS.register("ganspace")
def _ganspace(request: Request) -> Found:
  split, count = request.split, request.settings.num_directions
  z, labels = _sampled(request)
  if split.has_mapping:
    vectors, explained = pca(_w_of(request, z, labels), count)
  else:
    features = distribute.map_rows(
        request.strategy, lambda z, labels=None: split.first_features(
            z, labels), z, labels)
    vectors, explained = components_in_z(z, features, count)
  return Found(vectors, [{"explained_variance": float(e)}
                         for e in explained],
               {"num_samples": len(z)})


def pca(samples: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
  """The top principal components of samples [N, F].

  Returns:
    unit components [K, F] (K = min(count, F)), the strongest first, and
    the fraction of the samples' variance each explains [K].
  """
  centred = samples - samples.mean(axis=0)
  values, components = _top_singular(centred, min(count, centred.shape[1]))
  return _signed(components), np.square(values) / np.sum(np.square(centred))


def _top_singular(centred: np.ndarray,
                  count: int) -> tuple[np.ndarray, np.ndarray]:
  """The `count` largest singular values of centred [N, F] and their right
  singular vectors [count, F]: exact up to _EXACT_PCA_WIDTH features, then
  by a randomized SVD."""
  if centred.shape[1] <= _EXACT_PCA_WIDTH:
    _, values, vectors = np.linalg.svd(centred, full_matrices=False)
    return values[:count], vectors[:count]
  rng = np.random.default_rng(0)
  sketch = centred @ rng.standard_normal(
      (centred.shape[1], count + _OVERSAMPLING)).astype(centred.dtype)
  for _ in range(_POWER_ITERATIONS):  # sharpens toward the top components
    sketch = centred @ (centred.T @ np.linalg.qr(sketch)[0])
  basis = np.linalg.qr(sketch)[0]  # [N, count + oversampling], orthonormal
  _, values, vectors = np.linalg.svd(basis.T @ centred, full_matrices=False)
  return values[:count], vectors[:count]


def components_in_z(z: np.ndarray, features: np.ndarray,
                    count: int) -> tuple[np.ndarray, np.ndarray]:
  """GANSpace in z: PCA of the features [N, F] of z [N, D], taken to z.

  Each sample's coordinates along the components x [N, K] predict its z
  by least squares, z - mean ~ x U; row k of U is the z that moves the
  features along component k, normalised.

  Returns:
    unit directions in z [K, D] (K = min(count, D)) and the fraction of
    the features' variance each component explains [K].
  """
  components, explained = pca(features, min(count, z.shape[1]))
  coordinates = (features - features.mean(axis=0)) @ components.T  # [N, K]
  to_z, *_ = np.linalg.lstsq(coordinates.astype(np.float64),
                             z - z.mean(axis=0), rcond=None)  # [K, D]
  return to_z / np.linalg.norm(to_z, axis=1, keepdims=True), explained


# ----------------------------------------------------------------- labels


@METHODS.register("labels")
def _labels(request: Request) -> Found:
  settings = request.settings
  specs = [spec for spec in settings.condition.split(",") if spec]
  # The files are read first: a bad one stops before the work.
  files = [load_direction(spec, flag="--condition", request=request)
           for spec in specs if spec != CLASSES]
  digits_of = _digits_reader(request) if CLASSES in specs else None
  if settings.positive:
    latents, positive, details = _examples(request)
    if digits_of:  # the digits' boundaries come from samples
      sampled, (digits,) = _sampled_outputs(request, [digits_of])
  else:
    latents, positive, details, digits = _scored_samples(request, digits_of)
    sampled = latents
  boundary = fit_boundary(latents, positive, request.seed)
  normal, conditions, classes = boundary.normal, None, {}
  if specs:
    if digits_of:
      class_normals, classes = class_boundaries(sampled, digits,
                                                request.seed)
      files += list(class_normals)
    conditions = np.stack(files)
    normal = conditioned(normal, conditions)
  return Found(normal[None], [{
      "held_out_accuracy": boundary.accuracy,
      "held_out_balanced_accuracy": boundary.balanced_accuracy}], {
          **details, "positives": int(positive.sum()),
          "negatives": int((~positive).sum()),
          "held_out_share": _HELD_OUT,
          "condition": specs or None,
          **({"condition_classes": classes} if classes else {})},
      conditions)


# `--condition=classes`: the digits' boundaries by the MNIST classifier.
CLASSES = "classes"


def class_boundaries(latents: np.ndarray, digits: np.ndarray,
                     seed: int) -> tuple[np.ndarray, list[dict]]:
  """A boundary per digit between it and the others [C, D], on latents
  [N, D] whose images the MNIST classifier reads as digits [N], for each
  digit with at least _MIN_PER_SIDE of them on each side; and per digit its
  count and held-out accuracies.

  Raises:
    UserError: no digit has enough latents on each side.
  """
  normals, classes = [], []
  for digit in range(int(digits.max()) + 1):
    members = digits == digit
    if min(members.sum(), (~members).sum()) < _MIN_PER_SIDE:
      continue
    boundary = fit_boundary(latents, members, seed)
    normals.append(boundary.normal)
    classes.append({
        "class": digit, "samples": int(members.sum()),
        "held_out_accuracy": boundary.accuracy,
        "held_out_balanced_accuracy": boundary.balanced_accuracy})
  if not normals:
    most = np.bincount(digits).argmax()
    raise UserError(
        f"--condition={CLASSES} needs a digit with at least "
        f"{_MIN_PER_SIDE} samples and {_MIN_PER_SIDE} of other digits, and "
        f"the MNIST classifier reads {np.sum(digits == most)} of the "
        f"{len(digits)} samples as {most}; give more --num_samples or "
        f"leave {CLASSES} out")
  return np.stack(normals), classes


def _scored_samples(
    request: Request, digits_of: Callable[[tf.Tensor], tf.Tensor] | None
) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray | None]:
  """Sampled latents [N, D], whether the classifier finds the attribute in
  their images [N], how they were scored, and with `digits_of` the digits
  it reads in them [N] (else None): their images are drawn once."""
  settings = request.settings
  readers = [_classifier(request)] + ([digits_of] if digits_of else [])
  latents, outputs = _sampled_outputs(request, readers)
  scores, digits = outputs[0], (outputs[1] if digits_of else None)
  if settings.classifier in measures.MEASURES.names():
    # A measure has no natural cut: the samples' median splits them.
    threshold = float(np.median(scores))
    return latents, scores > threshold, {
        "num_samples": len(latents), "classifier": settings.classifier,
        "threshold": threshold, "threshold_is": "the samples' median"
    }, digits
  return latents, scores > settings.threshold, {
      "num_samples": len(latents), "classifier": settings.classifier,
      "attribute": settings.attribute, "threshold": settings.threshold
  }, digits


def _sampled_outputs(request: Request, readers: list[Callable[
    [tf.Tensor], tf.Tensor]]) -> tuple[np.ndarray, list[np.ndarray]]:
  """--num_samples sampled latents [N, D] and what each reader reads in
  their images (images [B, H, W, C] -> [B]), each [N]."""
  split, space = request.split, request.space
  z, labels = _sampled(request)
  latents = _w_of(request, z, labels)

  def read(x, labels=None):
    images = split.render(x, space, labels)
    return [reader(images) for reader in readers]

  return latents, distribute.map_rows(request.strategy, read, latents,
                                      labels)


def _digits_reader(request: Request) -> Callable[[tf.Tensor], tf.Tensor]:
  """images [B, H, W, C] in [-1, 1] -> the digit [B] the project's MNIST
  classifier finds most probable."""
  probabilities = _mnist_probabilities(request)
  return lambda images: tf.argmax(probabilities(images), axis=-1)


def _mnist_probabilities(request: Request
                         ) -> Callable[[tf.Tensor], tf.Tensor]:
  """images -> the 10 digits' probabilities [B, 10] by the project's MNIST
  classifier (trainer/features)."""
  with request.strategy.scope():
    extractor = features_lib.build("mnist_classifier", "",
                                   request.run.image_shape)
  return lambda images: extractor.extract(images)[1]


def _classifier(request: Request) -> Callable[[tf.Tensor], tf.Tensor]:
  """images [B, H, W, C] in [-1, 1] -> the --attribute output [B].

  "mnist": the probability of that digit by the project's MNIST
  classifier (trainer/features); a measure's name (measures.py: ink,
  slant, width): that measure; else a Keras model file's output.
  """
  spec, attribute = request.settings.classifier, request.settings.attribute
  if spec in measures.MEASURES.names():
    return measures.MEASURES.get(spec)
  shape = request.run.image_shape
  if spec == "mnist":
    outputs = _mnist_probabilities(request)
  else:
    with request.strategy.scope():
      model = _keras_model(spec)
      outputs = lambda images: tf.reshape(
          model(images, training=False), [tf.shape(images)[0], -1])
  count = int(outputs(tf.zeros((1,) + shape)).shape[-1])
  if not 0 <= attribute < count:
    raise UserError(f"--attribute={attribute} is out of range; the "
                    f"classifier {spec} has {count} outputs: it must be in "
                    f"[0, {count - 1}]")
  return lambda images: tf.cast(outputs(images)[:, attribute], tf.float32)


def _keras_model(path: str) -> keras.Model:
  if not tf.io.gfile.exists(path) or not path.endswith(".keras"):
    raise UserError(f"--classifier={path} is neither mnist, a measure ("
                    f"{', '.join(measures.MEASURES.names())}) nor an "
                    "existing .keras model file")
  try:
    return keras.models.load_model(path, compile=False)
  except (OSError, ValueError, TypeError) as e:
    reason = str(e).strip().splitlines()[0][:200] if str(e) else repr(e)
    raise UserError(f"--classifier={path} cannot be loaded as a Keras "
                    f"model ({reason})") from None


def _examples(request: Request) -> tuple[np.ndarray, np.ndarray, dict]:
  """The latents [N, D] of the --positive and --negative images, inverted,
  and which are positive [N]."""
  settings, split = request.settings, request.split
  space = request.inversion.space
  if space == "w+":
    raise UserError("labels fits a boundary between ws, one per image; "
                    "--space=w+ finds one per layer: invert with --space=w "
                    "or z")
  model = request.run.config.model
  read = [images_lib.read_images(
      path, flag=flag, image_size=model.image_size, channels=model.channels,
      resize=request.resize)[0]
          for flag, path in (("--positive", settings.positive),
                             ("--negative", settings.negative))]
  images = images_lib.from_uint8(np.concatenate(read))
  labels = request.labels_for(len(images))
  result = inversion_lib.invert(
      request.strategy, split, images,
      np.ones(images.shape[:3] + (1,), np.float32), operator=lambda x: x,
      labels=labels, latent_dim=model.latent_dim,
      settings=request.inversion)
  latents = result.latents
  if split.has_mapping:  # the one w of each image
    latents = distribute.map_rows(
        request.strategy, lambda x, labels=None: split.ws_of(
            x, space, labels)[:, 0], latents, labels)
  positive = np.arange(len(images)) < len(read[0])
  return latents, positive, {
      "positive": settings.positive, "negative": settings.negative,
      "inversion": dataclasses.asdict(request.inversion),
      "inversion_final_error": float(np.mean(result.final_error))}


@dataclasses.dataclass(frozen=True)
class Boundary:
  """A linear boundary in the latent space."""
  normal: np.ndarray  # [D], unit, toward the side with the attribute
  accuracy: float  # on the held-out latents
  balanced_accuracy: float  # the mean of the two sides' held-out accuracy


def fit_boundary(latents: np.ndarray, positive: np.ndarray,
                 seed: int) -> Boundary:
  """A logistic regression of `positive` [N] on latents [N, D].

  Fit on a random 80% of each side and scored on the other 20%.

  Raises:
    UserError: a side has fewer than _MIN_PER_SIDE latents.
  """
  positive = np.asarray(positive, bool)
  count = int(positive.sum())
  if min(count, len(positive) - count) < _MIN_PER_SIDE:
    raise UserError(
        f"labels needs at least {_MIN_PER_SIDE} latents on each side of the "
        f"boundary, and {count} of {len(positive)} have the attribute; "
        "change --attribute or --threshold, or give more --num_samples or "
        "examples")
  rng = np.random.default_rng(seed)
  held = np.zeros(len(positive), bool)
  for side in (True, False):
    members = rng.permutation(np.flatnonzero(positive == side))
    held[members[:max(1, int(len(members) * _HELD_OUT))]] = True
  x = np.asarray(latents, np.float64)
  mean, std = x[~held].mean(axis=0), x[~held].std(axis=0) + 1e-12
  weights, bias = _logistic((x[~held] - mean) / std, positive[~held])
  normal = weights / std  # the logit's gradient in the latents themselves
  predicted = (x[held] - mean) @ normal + bias > 0
  right = predicted == positive[held]
  return Boundary(
      normal / np.linalg.norm(normal), float(right.mean()),
      float(np.mean([right[positive[held] == side].mean()
                     for side in (True, False)])))


def _logistic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
  """Weights [D] and bias of an L2-regularised logistic regression of y
  [N] on x [N, D], by Newton's method.

  Each side weighs as much as the other whatever its size, so that a rare
  attribute's boundary is not pushed into it.
  """
  design = np.concatenate([x, np.ones((len(x), 1))], axis=1)  # [N, D + 1]
  weight = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum())  # [N], sums to 1
  penalty = np.full(design.shape[1], _L2)
  penalty[-1] = 0.0  # not on the bias
  theta = np.zeros(design.shape[1])
  for _ in range(_NEWTON_STEPS):
    p = 0.5 * (1.0 + np.tanh(0.5 * design @ theta))  # a stable sigmoid
    gradient = design.T @ (weight * (p - y)) + penalty * theta
    hessian = (design.T * (weight * p * (1 - p))) @ design + np.diag(penalty)
    step = np.linalg.solve(hessian, gradient)
    theta -= step
    if np.abs(step).max() < 1e-9:
      break
  return theta[:-1], float(theta[-1])


def conditioned(normal: np.ndarray, conditions: np.ndarray) -> np.ndarray:
  """InterFaceGAN's conditional direction: normal n [D] less its part in
  the span of the conditions [C, D] (or one [D]), renormalised; for one
  condition c, n - (n . c) c / |c|^2.

  Moving along it does not move along any condition, so that an edit of
  one attribute keeps the others.

  Raises:
    UserError: normal lies (nearly) in the conditions' span.
  """
  # An orthonormal basis of their span [D, rank]: a condition that others
  # already span adds nothing.
  vectors, values, _ = np.linalg.svd(np.atleast_2d(conditions).T,
                                     full_matrices=False)
  basis = vectors[:, values > 1e-9 * values.max()]
  projected = normal - basis @ (basis.T @ normal)
  norm = np.linalg.norm(projected)
  if norm < 1e-6:
    raise UserError("--condition spans the direction found: nothing is left "
                    "once it is projected out")
  return projected / norm


# --------------------------------------------------------------- sampling


def _sampled(request: Request) -> tuple[np.ndarray, np.ndarray | None]:
  """--num_samples z [N, latent_dim] from --seed, and their labels."""
  count = request.settings.num_samples
  z = np.random.default_rng(request.seed).standard_normal(
      (count, request.run.config.model.latent_dim)).astype(np.float32)
  return z, request.labels_for(count)


def _w_of(request: Request, z: np.ndarray,
          labels: np.ndarray | None) -> np.ndarray:
  """The latents [N, D] where directions live: w of z, or z itself."""
  split = request.split
  if not split.has_mapping:
    return z
  return distribute.map_rows(
      request.strategy, lambda z, labels=None: split.to_w(
          z, labels, False)[:, 0], z, labels)


# ------------------------------------------------------------------ flags


def layers_of(spec: str, split: latent_lib.LatentSplit,
              family: str) -> range:
  """The ws [a, b) that --layers=a:b names (either end may be left out);
  all of them when empty. Empty without a mapping network.

  Raises:
    UserError: a G without a mapping network, or not a range of its ws.
  """
  if not split.has_mapping:
    if spec:
      raise UserError(f"--layers={spec} counts the ws of a mapping network, "
                      f"and model.architecture={family} has none; leave it "
                      "out")
    return range(0)
  count = split.num_ws
  first, colon, stop = spec.partition(":")
  try:
    layers = range(int(first or 0), int(stop or count))
  except ValueError:
    layers = None
  if spec and (not colon or layers is None
               or not 0 <= layers.start < layers.stop <= count):
    raise UserError(f"--layers={spec} is out of range; this model has "
                    f"{count} ws: give a:b with 0 <= a < b <= {count}")
  return layers


def load_direction(spec: str, *, flag: str, request: Request) -> np.ndarray:
  """Direction `index` [D] (unit) of `spec`, <file.npy>[:index] (default 0).

  Raises:
    UserError: a missing or unreadable file, not directions [K, D], the
      wrong D for the model, or an index beyond K.
  """
  path, _, index = spec.rpartition(":")
  if not (path and index.isdigit()):
    path, index = spec, "0"
  if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
    also = f", or {CLASSES}" if flag == "--condition" else ""
    raise UserError(f"{flag}={spec}: {path} does not exist; give a "
                    "directions.npy of python -m trainer.apply directions"
                    f"{also}")
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  try:
    vectors = np.load(io.BytesIO(data), allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise UserError(f"{flag}={spec}: {path} is not a .npy file ({e})"
                    ) from None
  if (not isinstance(vectors, np.ndarray) or vectors.ndim != 2
      or not len(vectors) or vectors.dtype.kind != "f"):
    shape = getattr(vectors, "shape", "none")
    raise UserError(f"{flag}={spec}: {path} does not hold directions, a "
                    f"float array [K, D]: its shape is {shape}")
  if vectors.shape[1] != request.size:
    raise UserError(
        f"{flag}={spec}: {path} holds directions of D={vectors.shape[1]} "
        f"numbers, and this model's {request.space} has D={request.size}")
  if int(index) >= len(vectors):
    raise UserError(f"{flag}={spec} asks for direction {index}, and {path} "
                    f"holds K={len(vectors)} (0 to {len(vectors) - 1})")
  vector = vectors[int(index)].astype(np.float64)
  norm = np.linalg.norm(vector)
  if not np.isfinite(norm) or norm == 0:
    raise UserError(f"{flag}={spec}: direction {index} of {path} is zero "
                    "or not finite")
  return vector / norm
