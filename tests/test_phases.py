"""The step's phases: built from the config, and open to new kinds."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import cpu_strategy
from tests.conftest import load_config
from tests.conftest import TINY_STYLEGAN2
from tests.test_step import _synthetic
from tests.test_step import TINY
from trainer import phases as phases_lib
from trainer import random_streams
from trainer import state as state_lib
from trainer import step as step_lib


def _names(config) -> list[tuple[str, int, bool]]:
  state = state_lib.build_state(config, tf.distribute.get_strategy())
  return [(phase.name, phase.interval, phase.replicated) for phase in
          phases_lib.make_phases(state, config, config.train.batch_size)]


def test_the_phase_list_follows_the_config():
  # StyleGAN2's step: lazy R1 every 16, the path length every 4, ADA's p.
  config = load_config(**{**TINY_STYLEGAN2, "penalties.names": "r1,pl",
                          "penalties.r1.interval": 16,
                          "penalties.pl.interval": 4, "augment.name": "ada"})
  assert _names(config) == [
      ("schedules", 1, False), ("d", 1, True), ("d_r1", 16, True),
      ("g", 1, True), ("g_pl", 4, True), ("ema", 1, True),
      ("augment_p", 1, False)]
  # R3GAN's: R1 and R2 eager in D's loss; one pass for both with
  # simultaneous; a fixed p has no phase.
  config = load_config(**{**TINY, "model.loss": "rpgan",
                          "penalties.names": "r1,r2",
                          "penalties.r1.interval": 1,
                          "penalties.r2.interval": 1,
                          "train.simultaneous": True,
                          "augment.p_mode": "fixed"})
  assert _names(config) == [("schedules", 1, False), ("d_and_g", 1, True),
                            ("ema", 1, True)]


def _weights(state) -> list[np.ndarray]:
  return [v.numpy() for v in (state.generator.variables
                              + state.discriminator.variables)]


@pytest.mark.slow
def test_a_new_phase_kind_is_one_registration_and_changes_no_other_draw(
    monkeypatch):
  # A phase that draws noise of its own every other step and reports its
  # mean; registered, it runs in its place, its metric is averaged over the
  # steps it ran, and the other phases draw and train exactly as before.
  config = load_config(**{**TINY, "penalties.names": "r1",
                          "penalties.r1.interval": 2})
  source = _synthetic()

  def train(steps: int):
    strategy = cpu_strategy(1)
    state = state_lib.build_state(config, strategy)
    metrics, _ = step_lib.make_train_steps(config, strategy, state, source,
                                           0)(steps)
    return _weights(state), metrics

  before, _ = train(4)
  monkeypatch.setattr(phases_lib, "PHASE_KINDS",
                      list(phases_lib.PHASE_KINDS))

  @phases_lib.phase_kind("probe", order=45)
  def _probe(parts: phases_lib.Parts) -> list[phases_lib.Phase]:
    number = parts.draws.take()
    assert number == config.train.n_disc + 2  # after D's, G's and d_r1's

    def fn(real):
      del real
      step = parts.state.step.read_value()
      z, _ = parts.fake_inputs(step, number)
      return {"probe/noise_mean": parts.average(tf.reduce_mean(z, axis=1)),
              "probe/step": tf.cast(step, tf.float32) / parts.replicas()}

    return [phases_lib.Phase("probe", fn, interval=2)]

  state = state_lib.build_state(config, tf.distribute.get_strategy())
  names = [phase.name for phase in phases_lib.make_phases(
      state, config, config.train.batch_size)]
  assert names.index("probe") == names.index("g") + 1
  after, metrics = train(4)
  for b, a in zip(before, after):
    np.testing.assert_array_equal(b, a)
  assert metrics["probe/step"] == 1.0  # the mean of steps 0 and 2
  assert 0 < abs(metrics["probe/noise_mean"]) < 1


def test_the_draw_counter_hands_out_each_number_once():
  counter = random_streams.DrawCounter()
  assert [counter.take() for _ in range(4)] == [0, 1, 2, 3]
