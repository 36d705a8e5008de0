"""Feature extractors for evaluation, looked up by `eval.extractor`.

An extractor maps images in [-1, 1] to an embedding (for FID, KID, precision
and recall) and class probabilities (for the Inception Score and mode
counting). Extractors are built inside the strategy's scope and called on
every replica.
"""

import dataclasses
import hashlib
from typing import Callable

import keras
import tensorflow as tf

from trainer.errors import UserError
from trainer.registry import Registry

# images float32 [B, H, W, C] in [-1, 1] -> (embedding [B, D],
# probabilities [B, K]).
ExtractFn = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A feature extractor and what identifies it in a protocol.

  Attributes:
    name: its registry name (eval.extractor).
    identity: name, version and a hash of the weights: two extractors with
      the same identity give the same features (used to key cached features).
    num_classes: K, the number of classes (modes) of the probabilities.
    extract: the function, to be called in a replica context.
  """
  name: str
  identity: str
  num_classes: int
  extract: ExtractFn


EXTRACTORS: Registry = Registry("feature extractor", "eval.extractor")


def build(name: str, path: str,
          image_shape: tuple[int, int, int]) -> Extractor:
  """Builds extractor `name` for images of `image_shape`; call in a scope.

  Args:
    name: registry name.
    path: a local weights file; "" for the extractor's default.
    image_shape: [H, W, C] of the images it will see.
  """
  return EXTRACTORS.get(name)(path, image_shape)


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


# ------------------------------------------------------- MNIST classifier ---

def _to_28x28(images: tf.Tensor) -> tf.Tensor:
  """[B, H, W, C] -> [B, 28, 28, C], the MNIST classifier's input size."""
  if tuple(images.shape[1:3]) == (28, 28):
    return images
  return tf.image.resize(images, [28, 28], method="bilinear", antialias=True)


@EXTRACTORS.register("mnist_classifier")
def _mnist_classifier(path: str,
                      image_shape: tuple[int, int, int]) -> Extractor:
  """The project's own MNIST classifier (trainer/features/mnist_classifier).

  Grey 28x28 images are classified into 10 digits. Stacked MNIST (28x28x3:
  one digit per channel) is classified channel by channel: the embedding is
  the three embeddings side by side, and the probabilities are over the 1000
  modes 100 * R + 10 * G + B (the product of the channels' probabilities).
  Images of another size (MNIST trained at 32x32, say) are resized to 28x28
  first (bilinear, antialiased), real and generated alike; the size is part
  of the extractor's identity, so features of different sizes never mix.
  """
  from trainer.features import mnist_classifier  # pylint: disable=g-import-not-at-top

  height, width, channels = image_shape
  if channels not in (1, 3):
    raise UserError(
        f"eval.extractor=mnist_classifier reads images with 1 channel "
        f"(MNIST) or 3 (Stacked MNIST); these are {height}x{width}x"
        f"{channels}. Use eval.extractor=inception_v3 for other images")
  path = path or mnist_classifier.DEFAULT_PATH
  model = mnist_classifier.load(path)
  identity = (f"mnist_classifier-{mnist_classifier.VERSION}-"
              f"{file_sha256(path)[:16]}")
  if (height, width) != (28, 28):
    identity += f"-from-{height}x{width}"

  def classify(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    embedding, logits = model(_to_28x28(images), training=False)
    return embedding, tf.nn.softmax(logits)

  if channels == 1:
    return Extractor("mnist_classifier", identity, 10, classify)

  def classify_stacked(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    batch = tf.shape(images)[0]
    images = _to_28x28(images)
    # [B, 28, 28, 3] -> [3B, 28, 28, 1], channel-major, so one call does all.
    digits = tf.reshape(tf.transpose(images, [3, 0, 1, 2]), [-1, 28, 28, 1])
    embedding, probabilities = classify(digits)  # [3B, D], [3B, 10]
    embedding = tf.reshape(embedding, [3, batch, -1])
    probabilities = tf.reshape(probabilities, [3, batch, 10])
    red, green, blue = probabilities[0], probabilities[1], probabilities[2]
    joint = (red[:, :, None, None] * green[:, None, :, None]
             * blue[:, None, None, :])  # [B, 10, 10, 10]
    return (tf.concat(tf.unstack(embedding), axis=-1),
            tf.reshape(joint, [batch, 1000]))

  return Extractor("mnist_classifier", identity + "-stacked", 1000,
                   classify_stacked)


# ----------------------------------------------------------- InceptionV3 ---

_INCEPTION_SIZE = 299
_INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"


def _inception_model(path: str) -> tuple[keras.Model, str]:
  """InceptionV3 with ImageNet weights from `path` or Keras's download."""
  if path:
    if not tf.io.gfile.exists(path):
      raise UserError(
          f"eval.extractor_path={path} does not exist; give the path of the "
          f"InceptionV3 ImageNet weights ({_INCEPTION_FILE} from Keras "
          "applications), or leave it empty to download them")
    weights = path
  else:
    try:
      weights = keras.utils.get_file(
          _INCEPTION_FILE,
          "https://storage.googleapis.com/tensorflow/keras-applications/"
          f"inception_v3/{_INCEPTION_FILE}",
          cache_subdir="models", file_hash="9a0d58056eeedaa3f26cb7ebd46da564")
    except Exception as e:  # pylint: disable=broad-except
      # Network failures surface as several exception types.
      reason = str(e).strip().splitlines()[0][:200] if str(e) else repr(e)
      raise UserError(
          "InceptionV3's ImageNet weights are not cached and could not be "
          f"downloaded ({reason}). Download {_INCEPTION_FILE} on a machine "
          "with internet (keras.applications.InceptionV3(weights='imagenet') "
          "puts it in ~/.keras/models) and set eval.extractor_path to it"
      ) from None
  try:
    model = keras.applications.InceptionV3(weights=weights)
  except (OSError, ValueError) as e:
    reason = str(e).strip().splitlines()[0][:200]
    raise UserError(f"cannot load InceptionV3 weights from {weights} "
                    f"({reason}); the file must hold InceptionV3's ImageNet "
                    f"weights with the top ({_INCEPTION_FILE})") from None
  pooled = model.get_layer("avg_pool").output
  return keras.Model(model.inputs, [pooled, model.output]), weights


@EXTRACTORS.register("inception_v3")
def _inception_v3(path: str, image_shape: tuple[int, int, int]) -> Extractor:
  """InceptionV3 (Keras applications, ImageNet weights): 2048-d pool features.

  Images are resized to 299x299 (bilinear) and grey ones repeated over RGB;
  [-1, 1] is already InceptionV3's input range. This is Keras's InceptionV3,
  not the 2015 graph that the FID papers and pytorch-fid use, so its FIDs are
  comparable with each other, not with published numbers.
  """
  channels = image_shape[2]
  if channels not in (1, 3):
    raise UserError(f"eval.extractor=inception_v3 reads grey or RGB images; "
                    f"these have {channels} channels")
  model, weights = _inception_model(path)
  identity = f"inception_v3-{file_sha256(weights)[:16]}"

  def extract(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    if channels == 1:
      images = tf.repeat(images, 3, axis=-1)
    images = tf.image.resize(images, [_INCEPTION_SIZE, _INCEPTION_SIZE],
                             method="bilinear")
    return model(images, training=False)

  return Extractor("inception_v3", identity, 1000, extract)
