"""A distributed GAN trainer on TensorFlow 2 and Keras 3."""
