"""The TensorFlow DCGAN tutorial's training loop, re-implemented faithfully.

The loop users would otherwise copy (tensorflow.org/tutorials/generative/
dcgan): its generator and discriminator, batch 256, Adam 1e-4 for both, two
gradient tapes, one update of each per step from one batch of fakes, the
step a `@tf.function` called from a Python loop over a `tf.data` dataset, no
distribution strategy. Written here from the tutorial's description, with
its bugs-free parts only: D returns logits and the loss is
`BinaryCrossentropy(from_logits=True)`, real images labelled 1.
"""

import keras
import numpy as np
import tensorflow as tf

BATCH_SIZE = 256
LEARNING_RATE = 1e-4
NOISE_DIM = 100


def generator() -> keras.Model:
  return keras.Sequential([
      keras.Input((NOISE_DIM,)),
      keras.layers.Dense(7 * 7 * 256, use_bias=False),
      keras.layers.BatchNormalization(),
      keras.layers.LeakyReLU(),
      keras.layers.Reshape((7, 7, 256)),
      keras.layers.Conv2DTranspose(128, 5, strides=1, padding="same",
                                   use_bias=False),
      keras.layers.BatchNormalization(),
      keras.layers.LeakyReLU(),
      keras.layers.Conv2DTranspose(64, 5, strides=2, padding="same",
                                   use_bias=False),
      keras.layers.BatchNormalization(),
      keras.layers.LeakyReLU(),
      keras.layers.Conv2DTranspose(1, 5, strides=2, padding="same",
                                   use_bias=False, activation="tanh"),
  ], name="tutorial_generator")


def discriminator() -> keras.Model:
  return keras.Sequential([
      keras.Input((28, 28, 1)),
      keras.layers.Conv2D(64, 5, strides=2, padding="same"),
      keras.layers.LeakyReLU(),
      keras.layers.Dropout(0.3),
      keras.layers.Conv2D(128, 5, strides=2, padding="same"),
      keras.layers.LeakyReLU(),
      keras.layers.Dropout(0.3),
      keras.layers.Flatten(),
      keras.layers.Dense(1),
  ], name="tutorial_discriminator")


class TutorialLoop:
  """The tutorial's models, optimizers, dataset and step."""

  def __init__(self, images: np.ndarray, *, seed: int = 0):
    """images: float32 [N, 28, 28, 1] in [-1, 1], the training set."""
    keras.utils.set_random_seed(seed)
    self.generator, self.discriminator = generator(), discriminator()
    self.g_optimizer = g_optimizer = keras.optimizers.Adam(LEARNING_RATE)
    self.d_optimizer = d_optimizer = keras.optimizers.Adam(LEARNING_RATE)
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    g, d = self.generator, self.discriminator
    self._dataset = iter(tf.data.Dataset.from_tensor_slices(images)
                         .shuffle(len(images)).repeat()
                         .batch(BATCH_SIZE, drop_remainder=True))

    @tf.function
    def train_step(real):
      noise = tf.random.normal([BATCH_SIZE, NOISE_DIM])
      with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
        fake = g(noise, training=True)
        real_logits = d(real, training=True)
        fake_logits = d(fake, training=True)
        g_loss = cross_entropy(tf.ones_like(fake_logits), fake_logits)
        d_loss = (cross_entropy(tf.ones_like(real_logits), real_logits)
                  + cross_entropy(tf.zeros_like(fake_logits), fake_logits))
      g_optimizer.apply_gradients(zip(
          g_tape.gradient(g_loss, g.trainable_variables),
          g.trainable_variables))
      d_optimizer.apply_gradients(zip(
          d_tape.gradient(d_loss, d.trainable_variables),
          d.trainable_variables))
      return g_loss, d_loss

    self._step = train_step

  def run(self, steps: int) -> tuple[float, float]:
    """Runs `steps` steps as the tutorial does; returns the last losses."""
    for _ in range(steps):
      g_loss, d_loss = self._step(next(self._dataset))
    return float(g_loss), float(d_loss)
