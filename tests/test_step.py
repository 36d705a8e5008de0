"""Fast checks of the training step's parts on small synthetic data.

Losses x penalties x augmentations, the lazy schedule and its Adam
correction, ADA's p, and replica equivalence with ADA and R1: each test
builds tiny networks on 14x14 random images, in seconds, so that a change to
the step can be checked without the slower integration tests. The checks of
many combinations run op by op (conftest's `eager`); each loss, penalty and
augmentation also runs in a traced step, as training runs it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import assert_replicas_agree
from tests.conftest import cpu_strategy
from tests.conftest import load_config
from tests.conftest import TINY_STYLEGAN2
from trainer.data import pipeline
from trainer.data import sources
from trainer.errors import UserError
from trainer import loop
from trainer import losses
from trainer import models
from trainer.models import stylegan2
from trainer import optimizer as optimizer_lib
from trainer import phases as phases_lib
from trainer import state as state_lib
from trainer import step as step_lib

TINY = {"model.image_size": 14, "model.g_width": 4, "model.d_width": 4,
        "model.latent_dim": 8, "train.batch_size": 4}


def _synthetic(channels: int = 1, count: int = 32) -> sources.Source:
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(count, 14, 14, channels), dtype=np.uint8)
  return sources.in_memory(
      "synthetic", images, np.arange(count) % 10, 10,
      sources.Request(split="train", image_size=14, channels=channels,
                      resize=False))


@pytest.fixture(scope="module")
def data() -> sources.Source:
  return _synthetic()


def _steps(config, source, replicas: int = 1):
  strategy = cpu_strategy(replicas)
  state = state_lib.build_state(config, strategy)
  return state, step_lib.make_train_steps(config, strategy, state, source, 0)


_PENALTIES = ["", "r1", "r2", "r1,r2"]
_AUGMENTATIONS = ["", "diffaugment", "ada"]


# Every combination op by op; the traced steps follow.
@pytest.mark.slow
@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("augment", _AUGMENTATIONS)
@pytest.mark.parametrize("penalties", _PENALTIES)
@pytest.mark.parametrize("loss", losses.LOSSES.names())
def test_one_step_of_every_loss_penalty_and_augmentation(loss, penalties,
                                                         augment, data):
  _check_one_step(loss, penalties, augment, data)


# Each loss, each set of penalties and each augmentation in a traced step.
_TRACED = [(loss, _PENALTIES[i % len(_PENALTIES)],
            _AUGMENTATIONS[i % len(_AUGMENTATIONS)])
           for i, loss in enumerate(losses.LOSSES.names())]


@pytest.mark.parametrize("loss,penalties,augment", _TRACED)
def test_one_traced_step_of_each_loss_penalty_and_augmentation(
    loss, penalties, augment, data):
  _check_one_step(loss, penalties, augment, data)


def test_the_traced_steps_cover_every_penalty_and_augmentation():
  assert {p for _, p, _ in _TRACED} == set(_PENALTIES)
  assert {a for _, _, a in _TRACED} == set(_AUGMENTATIONS)


def _check_one_step(loss: str, penalties: str, augment: str,
                    data: sources.Source) -> None:
  """One step: finite metrics, each penalty's and ADA's logged, every
  kernel of both networks moved."""
  config = load_config(**TINY, **{
      "model.loss": loss, "penalties.names": penalties,
      "penalties.r1.interval": 1, "penalties.r2.interval": 1,
      "augment.name": augment, "augment.p": 0.5, "augment.p_mode": "fixed"})
  state, train_steps = _steps(config, data)
  before = [v.numpy() for v in state.discriminator.trainable_variables
            + state.generator.trainable_variables]
  metrics, first_bad = train_steps(1)
  assert first_bad == -1
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  expected = {f"penalties/{n}" for n in config.penalties.names.split(",") if n}
  assert expected <= metrics.keys()
  assert ("augment/p" in metrics) == (augment == "ada")
  assert metrics["grad_norm/d"] > 0 and metrics["grad_norm/g"] > 0
  assert 0 < metrics["d_output/real"] < 1 and 0 < metrics["d_output/fake"] < 1
  assert int(state.step.numpy()) == 1
  # Every kernel of both networks moved (a bias may get a zero gradient).
  after = state.discriminator.trainable_variables + (
      state.generator.trainable_variables)
  assert all(not np.array_equal(b, a.numpy())
             for b, a in zip(before, after) if "kernel" in a.path)


@pytest.mark.parametrize("name,norm", [("r1", "grad_norm/d_r1"),
                                       ("pl", "grad_norm/g_pl")])
def test_lazy_penalty_runs_on_the_steps_k_times_n(name, norm, data):
  config = load_config(**TINY, **{"penalties.names": name,
                                  f"penalties.{name}.interval": 3})
  _, train_steps = _steps(config, data)
  ran = []
  for step in range(7):  # the counter before each step
    metrics, _ = train_steps(1)
    if f"penalties/{name}" in metrics:
      ran.append(step)
      assert metrics[norm] > 0
  assert ran == [0, 3, 6]


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("simultaneous", [False, True])
@pytest.mark.parametrize("loss", losses.LOSSES.names())
def test_one_step_with_an_eager_path_length_penalty(loss, simultaneous, data):
  config = load_config(**TINY, **{
      "model.loss": loss, "penalties.names": "pl", "penalties.pl.interval": 1,
      "train.simultaneous": simultaneous})
  state, train_steps = _steps(config, data)
  metrics, first_bad = train_steps(1)
  assert first_bad == -1
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert metrics["penalties/pl"] > 0
  # The running mean moved from 0 by decay * mean length, and is logged.
  mean = float(state.penalties.variables_of["pl"]["mean"].numpy())
  assert mean > 0 and metrics["penalties/pl_mean"] == pytest.approx(mean)
  assert not any(name.startswith("grad_norm/g_") for name in metrics)


@pytest.mark.slow
def test_lazy_path_length_update_is_the_penalty_times_its_interval(data):
  # The same draws at intervals 2 and 4: the update's gradient doubles.
  norms = []
  for interval in (2, 4):
    config = load_config(**TINY, **{
        "penalties.names": "pl", "penalties.pl.interval": interval})
    strategy = cpu_strategy(1)
    state = state_lib.build_state(config, strategy)
    (lazy,) = [phase for phase in phases_lib.make_phases(
        state, config, config.train.batch_size) if phase.interval > 1]
    assert lazy.name == "g_pl"
    metrics = tf.function(lambda: strategy.run(lazy.fn, args=({},)))()
    assert sorted(metrics) == ["grad_norm/g_pl", "penalties/pl",
                               "penalties/pl_mean"]
    norms.append(float(metrics["grad_norm/g_pl"]))
  assert norms[1] == pytest.approx(2 * norms[0], rel=1e-4)


def _penalty_gradient_norm(state, config, images, gain: float) -> float:
  """The global norm of d(gain * gamma/2 * mean R1)/d(D) by hand."""
  d = state.discriminator
  real = tf.cast(images, tf.float32)
  with tf.GradientTape() as tape:
    with tf.GradientTape() as inner:
      inner.watch(real)
      total = tf.reduce_sum(models.judge(d, real, None, training=True))
    r1 = tf.reduce_sum(tf.square(inner.gradient(total, real)), axis=[1, 2, 3])
    loss = gain * 0.5 * config.penalties.r1.weight * tf.reduce_mean(r1)
  grads = tape.gradient(loss, d.trainable_variables)
  return float(tf.linalg.global_norm([g for g in grads if g is not None]))


@pytest.mark.slow
@pytest.mark.parametrize("interval", [1, 4])
def test_lazy_update_is_the_penalty_times_its_interval(interval, data):
  config = load_config(**TINY, **{
      "penalties.names": "r1", "penalties.r1.interval": interval,
      "penalties.r1.weight": 3.0, "model.d_dropout": 0.0})
  strategy = cpu_strategy(1)
  state = state_lib.build_state(config, strategy)
  phases = phases_lib.make_phases(state, config, config.train.batch_size)
  images = pipeline.to_unit_range(data.read(tf.range(4))["image"])
  expected = _penalty_gradient_norm(state, config, images, gain=interval)
  element = {"image": images[None], "label": tf.zeros([1, 4], tf.int32)}
  names = [phase.name for phase in phases]
  if interval == 1:  # eager: in D's loss, no update of its own
    assert names == ["schedules", "d", "g", "ema", "augment_p"]
    (d,) = [phase for phase in phases if phase.name == "d"]
    metrics = tf.function(lambda: strategy.run(d.fn, args=(element,)))()
    assert "penalties/r1" in metrics
    return
  assert names == ["schedules", "d", "d_r1", "g", "ema", "augment_p"]
  lazy = phases[2]
  assert lazy.interval == interval
  metrics = tf.function(lambda: strategy.run(lazy.fn, args=(element,)))()
  assert float(metrics["grad_norm/d_r1"]) == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("names,runs_g", [("r1", False), ("r2", True)])
def test_a_lazy_d_update_runs_g_only_for_penalties_on_fakes(names, runs_g):
  # Observed through w's average, which moves whenever G runs in training.
  config = load_config(**{**TINY_STYLEGAN2, "penalties.names": names,
                          f"penalties.{names}.interval": 2,
                          "model.w_avg_beta": 0.5})
  strategy = cpu_strategy(1)
  state = state_lib.build_state(config, strategy)
  phases = phases_lib.make_phases(state, config, config.train.batch_size)
  (lazy,) = [phase for phase in phases if phase.interval == 2]
  images = tf.random.stateless_uniform([1, 8, 32, 32, 1], [0, 3], -1, 1)
  element = {"image": images, "label": tf.zeros([1, 8], tf.int32)}
  w_avg = stylegan2.mapping_of(state.generator).w_avg
  before = w_avg.numpy().copy()
  tf.function(lambda: strategy.run(lazy.fn, args=(element,)))()
  assert (not np.array_equal(before, w_avg.numpy())) == runs_g


def test_adam_is_corrected_for_the_lazy_updates(data):
  config = load_config(**TINY, **{"penalties.names": "r1,r2",
                                  "penalties.r1.interval": 16,
                                  "penalties.r2.interval": 16})
  state = state_lib.build_state(config, cpu_strategy(1))
  ratio = 16 / 17  # one group of interval 16
  d_opt, g_opt = state.d_optimizer, state.g_optimizer
  assert float(d_opt.learning_rate.numpy()) == pytest.approx(config.optim.d_lr * ratio)
  assert d_opt.beta_1 == pytest.approx(config.optim.beta1**ratio)
  assert d_opt.beta_2 == pytest.approx(config.optim.beta2**ratio)
  # G has no lazy penalty: uncorrected. Eager penalties correct nothing.
  assert float(g_opt.learning_rate.numpy()) == pytest.approx(config.optim.g_lr)
  eager = state_lib.build_state(load_config(**TINY, **{
      "penalties.names": "r1", "penalties.r1.interval": 1}), cpu_strategy(1))
  assert float(eager.d_optimizer.learning_rate.numpy()) == pytest.approx(
      config.optim.d_lr)
  # A lazy penalty of G (interval 4) corrects G's Adam alone.
  both = load_config(**TINY, **{"penalties.names": "r1,pl",
                                "penalties.r1.interval": 16,
                                "penalties.pl.interval": 4})
  state = state_lib.build_state(both, cpu_strategy(1))
  assert float(state.g_optimizer.learning_rate.numpy()) == pytest.approx(
      both.optim.g_lr * 4 / 5)
  assert state.g_optimizer.beta_2 == pytest.approx(both.optim.beta2**0.8)
  assert float(state.d_optimizer.learning_rate.numpy()) == pytest.approx(
      both.optim.d_lr * ratio)


_ADAM_SHAPES = [(5, 3), (3,)]


def _adam_updates(strategy, make_optimizer, gradients) -> list[np.ndarray]:
  """Applies each of `gradients` (one array per weight) through
  phases_lib.apply_gradients, split evenly over the replicas; returns the weights and
  the optimizer's variables."""
  rng = np.random.default_rng(1)
  with strategy.scope():
    weights = [keras.Variable(rng.normal(size=shape).astype("float32"))
               for shape in _ADAM_SHAPES]
    optimizer = make_optimizer()
    optimizer.build(weights)
  replicas = strategy.num_replicas_in_sync

  @tf.function
  def update(gradient):
    def fn():
      with tf.GradientTape() as tape:
        # Each replica's share: the sum over replicas is `gradient`.
        loss = tf.add_n([tf.reduce_sum(w * g) for w, g in
                         zip(weights, gradient)]) / replicas
      return phases_lib.apply_gradients(optimizer, tape, loss, weights)
    return strategy.run(fn)

  for gradient in gradients:
    update([tf.constant(g) for g in gradient])
  return [np.array(v.numpy()) for v in weights + optimizer.variables]


@pytest.mark.parametrize("replicas", [1, 2])
def test_the_fused_adam_updates_as_keras_adam(replicas):
  # optimizer.Adam applies TensorFlow's fused op to gradients that
  # phases.apply_gradients has summed over the replicas; Keras' Adam, on one device, must end at
  # the same weights, moments and step count.
  rng = np.random.default_rng(0)
  gradients = [[rng.normal(size=shape).astype("float32")
                for shape in _ADAM_SHAPES] for _ in range(4)]
  settings = dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9)
  ours = _adam_updates(cpu_strategy(replicas),
                       lambda: optimizer_lib.Adam(**settings), gradients)
  keras_adam = _adam_updates(tf.distribute.OneDeviceStrategy("/cpu:0"),
                             lambda: keras.optimizers.Adam(**settings),
                             gradients)
  assert len(ours) == len(keras_adam) == 2 + 1 + 1 + 2 * 2
  for a, b in zip(ours, keras_adam):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def _collectives(function, *args) -> int:
  graph = function.get_concrete_function(*args).graph.as_graph_def()
  nodes = list(graph.node) + [node for f in graph.library.function
                              for node in f.node_def]
  return sum(node.op.startswith("Collective") for node in nodes)


def test_an_update_reduces_its_gradients_over_the_replicas_once():
  # Keras' optimizers all-reduce the gradients they are given; phases_lib.apply_gradients
  # has already summed them (for the global norm), so a second reduction
  # would move every gradient's bytes twice.
  strategy = cpu_strategy(2)
  with strategy.scope():
    weights = [keras.Variable(tf.ones(shape)) for shape in _ADAM_SHAPES]
    optimizer = optimizer_lib.Adam(0.01)
    optimizer.build(weights)

  def loss_on(tape):
    with tape:
      return tf.add_n([tf.reduce_sum(w * w) for w in weights])

  @tf.function
  def update():
    def fn():
      tape = tf.GradientTape()
      return phases_lib.apply_gradients(optimizer, tape, loss_on(tape), weights)
    return strategy.run(fn)

  @tf.function
  def reduce_once():
    def fn():
      tape = tf.GradientTape()
      grads = tape.gradient(loss_on(tape), weights)
      return tf.distribute.get_replica_context().all_reduce(
          tf.distribute.ReduceOp.SUM, grads)
    return strategy.run(fn)

  assert _collectives(update) == _collectives(reduce_once) > 0


def _set_d_bias(state, value: float) -> None:
  """Makes D output `value` far from 0: its last bias dominates."""
  bias = state.discriminator.trainable_variables[-1]
  assert "bias" in bias.path and bias.shape == (1,), bias.path
  bias.assign([value])


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("replicas", [
    1, pytest.param(2, marks=pytest.mark.slow)])
@pytest.mark.parametrize("bias,moves", [(100.0, "up"), (-100.0, "down")])
def test_ada_p_rises_against_an_overfitting_d_and_falls_otherwise(
    bias, moves, replicas, data):
  # A D sure that every real is real (r_t = 1 > target) must get more
  # augmentation; one that calls reals fake (r_t = -1) less.
  config = load_config(**TINY, **{
      "augment.name": "ada", "augment.p": 0.5, "augment.interval": 2,
      "augment.speed_kimg": 0.08, "optim.d_lr": 1e-12, "optim.g_lr": 1e-12})
  state, train_steps = _steps(config, data, replicas)
  _set_d_bias(state, bias)
  metrics, _ = train_steps(4)  # two adjustments of 4 * 2 / 80 = 0.1 each
  expected = 0.7 if moves == "up" else 0.3
  assert float(state.augment.p.numpy()) == pytest.approx(expected, abs=1e-6)
  assert metrics["augment/rt"] == (1.0 if moves == "up" else -1.0)
  assert metrics["augment/p"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_p_is_clamped_fixed_or_scheduled(data):
  adaptive = load_config(**TINY, **{
      "augment.name": "ada", "augment.p": 0.05, "augment.interval": 1,
      "augment.speed_kimg": 0.04, "optim.d_lr": 1e-12})
  state, train_steps = _steps(adaptive, data)
  _set_d_bias(state, -100.0)
  train_steps(3)
  assert float(state.augment.p.numpy()) == 0.0  # never below 0
  fixed = load_config(**TINY, **{"augment.name": "ada", "augment.p": 0.3,
                                 "augment.p_mode": "fixed"})
  state, train_steps = _steps(fixed, data)
  train_steps(3)
  assert float(state.augment.p.numpy()) == pytest.approx(0.3)
  linear = load_config(**TINY, **{
      "augment.name": "ada", "augment.p": 0.0, "augment.p_mode": "fixed",
      "schedules.augment.p": "linear(0.5, 0.04)"})  # 10 steps of 4
  state, train_steps = _steps(linear, data)
  train_steps(4)  # the 4th step ran after 12 images: p = 0.5 * 12 / 40
  assert float(state.augment.p.numpy()) == pytest.approx(0.15)
  train_steps(8)
  assert float(state.augment.p.numpy()) == pytest.approx(0.5)


@pytest.mark.slow
def test_one_and_two_replicas_agree_with_ada_lazy_r1_and_path_length(data):
  assert_replicas_agree(load_config(**TINY, **{
      "model.d_dropout": 0.0, "augment.name": "ada", "augment.p": 0.6,
      "augment.interval": 2, "augment.speed_kimg": 0.1,
      "penalties.names": "r1,pl", "penalties.r1.interval": 2,
      "penalties.pl.interval": 2, "model.loss": "rpgan"}), data, steps=3)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_with_penalties_stays_finite(policy):
  config = load_config(**TINY, **{
      "runtime.mixed_precision": policy, "model.loss": "rpgan",
      "penalties.names": "r1,r2,gp,pl", "penalties.r1.interval": 1,
      "penalties.r2.interval": 2, "penalties.pl.interval": 2,
      "augment.name": "ada", "augment.p": 0.5, "model.channels": 3})
  _, train_steps = _steps(config, _synthetic(channels=3))
  for _ in range(2):
    metrics, first_bad = train_steps(2)
    assert first_bad == -1
    # Under float16 a gradient norm is Inf on a step whose loss scale
    # overflowed: LossScaleOptimizer skips that update and lowers the scale.
    checked = {k: v for k, v in metrics.items()
               if policy == "mixed_bfloat16" or not k.startswith("grad_norm")}
    assert all(np.isfinite(v) for v in checked.values()), metrics
    assert {"penalties/r1", "penalties/r2", "penalties/gp",
            "penalties/pl"} <= metrics.keys()


def test_a_g_penalty_batch_the_replicas_cannot_share_is_refused(tmp_path,
                                                                data):
  config = load_config(**TINY, **{"penalties.names": "pl",
                                  "penalties.pl.batch_shrink": 4})
  with pytest.raises(UserError, match="batch_shrink=4 leaves 1 of "
                     r"train.batch_size=4 examples, which the 2 replica\(s\)"):
    loop.run(config, str(tmp_path), cpu_strategy(2))
  assert not list(tmp_path.iterdir())  # nothing written
