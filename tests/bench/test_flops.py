"""FLOPs counts of the networks and steps, checked against TF's profiler."""

import keras
import pytest
import tensorflow as tf

from tests.conftest import load_config
from trainer.bench import flops
from trainer.bench import speed
from trainer.bench import tutorial
from trainer.models import ARCHITECTURES
from trainer.models import freezing
from trainer.models import stylegan2
from trainer.models import stylegan2_layers
from trainer import phases as phases_lib
from trainer import state as state_lib

# The tutorial's networks, multiply-adds by hand: G is dense 100 -> 7x7x256,
# then transposed convolutions 5x5 from 7x7x256 to 7x7x128, 7x7x128 to
# 14x14x64 and 14x14x64 to 28x28x1; D is 5x5 convolutions to 14x14x64 and
# 7x7x128, then dense 6272 -> 1.
G_MACS = (100 * 7 * 7 * 256 + 7 * 7 * 25 * 256 * 128 + 7 * 7 * 25 * 128 * 64
          + 14 * 14 * 25 * 64 * 1)
D_MACS = 14 * 14 * 25 * 1 * 64 + 7 * 7 * 25 * 64 * 128 + 7 * 7 * 128


def test_tutorial_networks_by_hand():
  assert flops.forward_flops(tutorial.generator()) == 2 * G_MACS
  assert flops.forward_flops(tutorial.discriminator()) == 2 * D_MACS
  step = flops.tutorial_step_flops(2 * G_MACS, 2 * D_MACS)
  assert round(step / 1e6) == 435  # "434 MFLOPs per example" in the issue


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_the_seed_dcgan_has_the_tutorials_flops(spectral_norm):
  # Spectral normalization wraps the layers; they are counted all the same.
  config = load_config(**{"model.d_spectral_norm": spectral_norm,
                          "model.g_spectral_norm": spectral_norm})
  g, d = ARCHITECTURES.get("dcgan")(config.model, "float32")
  assert flops.forward_flops(g) == 2 * G_MACS
  assert flops.forward_flops(d) == 2 * D_MACS


def _profiled(fn, *specs) -> int:
  """TensorFlow's own count of the FLOPs of fn's graph for these inputs."""
  graph = tf.function(fn).get_concrete_function(*specs).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph=graph,
                                       options=options).total_float_ops


def _profiled_live(fn, *specs) -> int:
  """The profiler's count of the part of fn's graph that its outputs need.

  The gradient a tape builds has ops whose results nobody uses (a frozen
  layer's filter gradient); TensorFlow's graph optimizer prunes them
  before running, and so does this before counting.
  """
  function = tf.function(fn).get_concrete_function(*specs)
  wanted = [t.op.name for t in function.outputs if t is not None]
  graph_def = tf.compat.v1.graph_util.extract_sub_graph(
      function.graph.as_graph_def(add_shapes=True), wanted)
  with tf.Graph().as_default() as graph:
    tf.graph_util.import_graph_def(graph_def, name="")
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph=graph,
                                       options=options).total_float_ops


def _transposed_excess(convs, in_size: int | None = None) -> float:
  """What TensorFlow's profiler counts beyond the multiply-adds of the
  transposed convolutions of StyleGAN2's upsampling layers.

  It counts a transposed convolution of stride 2 by its output, (2H+1)^2 /
  4 places for H x H inputs; each of the H^2 inputs meets the kernel once.
  """
  excess = 0.0
  for conv in convs:
    if conv.up:
      h = in_size or conv.resolution // 2
      places = (2 * h + 1)**2 / 4 - h * h
      excess += flops.kernel_flops(places, conv.kernel.shape)
  return excess


def _profiled_flops(model: keras.Model) -> int:
  """TensorFlow's own count of a forward pass of one example, as the step
  runs it (training mode)."""
  specs = [tf.TensorSpec([1, *x.shape[1:]], x.dtype) for x in model.inputs]
  return _profiled(lambda *x: model(list(x) if len(x) > 1 else x[0],
                                    training=True), *specs)


@pytest.mark.parametrize("build", [tutorial.generator, tutorial.discriminator])
def test_count_agrees_with_tensorflows_profiler(build):
  model = build()
  counted, profiled = flops.forward_flops(model), _profiled_flops(model)
  # The profiler also counts batch norm, biases and activations, which the
  # layer count leaves out: a few percent at most.
  assert counted <= profiled <= 1.05 * counted, (counted, profiled)


def test_our_step_counts_n_disc_updates_of_d():
  one = flops.gan_step_flops(100, 10, flops.StepShape(n_disc=1))
  two = flops.gan_step_flops(100, 10, flops.StepShape(n_disc=2))
  assert one == 4 * 100 + 9 * 10
  assert two - one == 100 + 6 * 10  # one more D update


def test_a_simultaneous_step_does_the_tutorials_work():
  assert flops.gan_step_flops(100, 10, flops.StepShape(simultaneous=True)) == (
      flops.tutorial_step_flops(100, 10))


def test_penalties_count_their_double_backward_per_application():
  plain = flops.gan_step_flops(100, 10, flops.StepShape(n_disc=2))
  eager = flops.gan_step_flops(100, 10, flops.StepShape(n_disc=2,
                                                        eager_penalties=1))
  assert eager - plain == 2 * 7 * 10  # in each of the 2 D updates
  # Lazy every 4 steps: R1 alone, then R1 and R2 (R2 draws fresh fakes).
  lazy_r1 = flops.gan_step_flops(100, 10, flops.StepShape(lazy=((4, 1, False),)))
  lazy_both = flops.gan_step_flops(100, 10,
                                   flops.StepShape(lazy=((4, 2, True),)))
  base = flops.gan_step_flops(100, 10, flops.StepShape())
  assert lazy_r1 - base == 7 * 10 / 4
  assert lazy_both - base == (2 * 7 * 10 + 100) / 4
  # rpgan's G update judges the reals too.
  assert flops.gan_step_flops(100, 10, flops.StepShape(
      generator_needs_real=True)) - base == 10
  # G's path length on half the batch: in every G update, or every 4 steps.
  assert flops.gan_step_flops(100, 10, flops.StepShape(
      g_eager_penalties=0.5)) - base == 7 * 100 / 2
  assert flops.gan_step_flops(100, 10, flops.StepShape(
      g_lazy=((4, 0.5),))) - base == 7 * 100 / 2 / 4


def test_step_shape_of_a_config():
  config = load_config(**{"model.loss": "rpgan",
                          "penalties.names": "r1,r2,gp,pl",
                          "penalties.r1.interval": 16,
                          "penalties.r2.interval": 16,
                          "penalties.gp.interval": 1,
                          "penalties.pl.interval": 4,
                          "penalties.pl.batch_shrink": 4})
  assert speed.step_shape(config) == flops.StepShape(
      n_disc=1, eager_penalties=1, lazy=((16, 2, True),),
      generator_needs_real=True, g_lazy=((4, 0.25),))


def test_a_penalty_costs_what_tensorflows_profiler_counts():
  # R1's contribution to D's update for one example: D forward, the input
  # gradient, and the gradient of its squared norm in D's weights.
  d = tutorial.discriminator()
  spec = tf.TensorSpec([1, 28, 28, 1])

  def penalty_update(x):
    with tf.GradientTape() as outer:
      with tf.GradientTape() as inner:
        inner.watch(x)
        total = tf.reduce_sum(d(x, training=True))
      r1 = tf.reduce_sum(tf.square(inner.gradient(total, x)))
    return outer.gradient(r1, d.trainable_variables)

  counted = flops.PENALTY_PASSES * flops.forward_flops(d)
  profiled = _profiled(penalty_update, spec)
  # The profiler counts only the convolutions and products, as we do.
  assert 0.97 * counted <= profiled <= 1.03 * counted, (counted, profiled)


# A StyleGAN2 at 16x16 (32 channels up to 8x8, 16 at 16x16): large enough
# for its products to outweigh what the count leaves out, as the DCGAN's do.
_STYLEGAN2 = {"model.architecture": "stylegan2", "model.image_size": 16,
              "model.channels": 1, "model.channel_base": 256,
              "model.channel_max": 32, "model.w_dim": 16,
              "model.mapping_layers": 2, "model.latent_dim": 8,
              "augment.name": ""}


@pytest.mark.parametrize("modconv", stylegan2_layers.MODCONVS.names())
def test_a_modulated_convolution_by_hand_and_by_tensorflows_profiler(modconv):
  # 8x8 upsampled to 16x16, 32 channels in and out, a style from w of 16.
  conv = stylegan2_layers.ModulatedConv2D(32, in_channels=32, w_dim=16,
                                          up=True, resolution=16,
                                          modconv=modconv)
  conv.build()
  counted = flops.layer_flops(conv, (None, 8, 8, 32))
  # The style's affine layer, the demodulation coefficients, the 3x3
  # transposed convolution at each of the 8x8 input pixels and the 4x4
  # filter at 16x16 per output channel.
  assert counted == 2 * (16 * 32 + 32 * 32 + 8 * 8 * 9 * 32 * 32
                         + 16 * 16 * 16 * 32)
  profiled = _profiled(
      lambda x, w: conv(x, w, noise=tf.zeros([1, 16, 16, 1])),
      tf.TensorSpec([1, 8, 8, 32]), tf.TensorSpec([1, 16]))
  counted += _transposed_excess([conv], in_size=8)
  assert counted <= profiled <= 1.05 * counted, (counted, profiled)


@pytest.mark.parametrize("num_classes", [
    0, pytest.param(10, marks=pytest.mark.slow)])
@pytest.mark.parametrize("modconv", stylegan2_layers.MODCONVS.names())
def test_stylegan2_count_agrees_with_tensorflows_profiler(modconv,
                                                          num_classes):
  config = load_config(**{**_STYLEGAN2, "model.modconv": modconv,
                          "model.num_classes": num_classes})
  for model in ARCHITECTURES.get("stylegan2")(config.model, "float32"):
    counted, profiled = flops.forward_flops(model), _profiled_flops(model)
    if model.name == "generator":
      counted += _transposed_excess(stylegan2.synthesis_of(model).convs)
    # Left out, as for the DCGAN: biases, activations, noise, the
    # modulation's elementwise products, the minibatch standard deviation.
    # In G they are 7% at these 32 channels: its upsampling convolutions
    # do a quarter of the multiply-adds of convolving at the doubled size,
    # and the elementwise work at the doubled size stays.
    bound = 1.08 if model.name == "generator" else 1.05
    assert counted <= profiled <= bound * counted, (model.name, counted,
                                                    profiled)


@pytest.mark.parametrize("num_classes", [0, 10])
def test_r3gan_count_agrees_with_tensorflows_profiler(num_classes):
  config = load_config(**{"model.architecture": "r3gan",
                          "model.image_size": 16, "model.channel_base": 256,
                          "model.channel_max": 32, "model.cardinality": 4,
                          "model.blocks_per_stage": 1,
                          "model.latent_dim": 8,
                          "model.num_classes": num_classes})
  for model in ARCHITECTURES.get("r3gan")(config.model, "float32"):
    counted, profiled = flops.forward_flops(model), _profiled_flops(model)
    # Left out: biases, activations, the residual sums and the basis'
    # elementwise product.
    assert counted <= profiled <= 1.05 * counted, (model.name, counted,
                                                   profiled)


@pytest.mark.slow
@pytest.mark.parametrize("interval", [1, 4], ids=["eager", "lazy"])
def test_a_step_with_the_path_length_costs_what_tensorflows_profiler_counts(
    interval):
  batch = 16
  config = load_config(**{**_STYLEGAN2, "train.batch_size": batch,
                          "penalties.names": "pl",
                          "penalties.pl.interval": interval})
  shape = speed.step_shape(config)
  # pl runs on batch / batch_shrink (2) latents.
  assert (shape.g_eager_penalties, shape.g_lazy) == (
      (0.5, ()) if interval == 1 else (0.0, ((4, 0.5),)))
  state = state_lib.build_state(config, tf.distribute.get_strategy())
  real = {"image": tf.TensorSpec([1, batch, 16, 16, 1]),
          "label": tf.TensorSpec([1, batch], tf.int32)}
  # Every phase of the step on the replicas (the updates, the optimizers,
  # the moving average) per example of the batch, and as often as it runs.
  phases = [phase for phase in phases_lib.make_phases(state, config, batch)
            if phase.replicated]
  costs = [_profiled(phase.fn, real) / batch for phase in phases]
  profiled = sum(cost / phase.interval for cost, phase in zip(costs, phases))
  g_forward = flops.forward_flops(state.generator)
  counted = flops.gan_step_flops(g_forward,
                                 flops.forward_flops(state.discriminator),
                                 shape)
  assert 0.97 * counted <= profiled <= 1.03 * counted, (counted, profiled)
  if interval > 1:  # G's lazy update, pl alone: 7 G forwards per latent
    lazy = [cost for cost, phase in zip(costs, phases)
            if phase.interval == interval]
    counted = flops.PENALTY_PASSES * g_forward / 2
    assert 0.97 * counted <= lazy[0] <= 1.03 * counted, (counted, lazy)


@pytest.mark.parametrize("architecture, freeze", [
    ("dcgan", 1), ("dcgan", 2), ("stylegan2", 1), ("stylegan2", 4)])
def test_freeze_d_saves_what_tensorflows_profiler_counts(architecture, freeze):
  # D's loss on a real and a fake example, differentiated in the weights
  # that train.freeze_d leaves trained, against in all of D's.
  fields = _STYLEGAN2 if architecture == "stylegan2" else {}
  config = load_config(**{**fields, "train.freeze_d": freeze,
                          "model.d_dropout": 0.0})
  _, d = ARCHITECTURES.get(architecture)(config.model, "float32")
  spec = tf.TensorSpec([1, *d.inputs[0].shape[1:]])

  def update(variables):
    def gradients(real, fake):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(d(real, training=True) - d(fake, training=True))
      return tape.gradient(loss, variables)
    return gradients

  saved = (_profiled_live(update(d.trainable_variables), spec, spec)
           - _profiled_live(update(freezing.trained_variables(config, d)),
                            spec, spec))
  counted = 2 * flops.freeze_saving(
      d, freezing.frozen_layers(config.model, d, freeze))
  # Within 5%: the profiler also counts the frozen layers' bias gradients
  # (the DCGAN's 0.1% above the count); StyleGAN2's resampling filters'
  # gradients it counts by another rule (1 to 3% below the count).
  assert counted > 0
  assert 0.95 * counted <= saved <= 1.05 * counted, (counted, saved)
  base = flops.gan_step_flops(10, 100, flops.StepShape())
  assert base - flops.gan_step_flops(10, 100, flops.StepShape(),
                                     d_frozen=7) == 2 * 7
