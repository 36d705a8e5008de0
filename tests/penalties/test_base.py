"""Penalty groups, the lazy correction and the registry."""

import ml_collections
import pytest

from trainer.errors import UserError
from trainer.penalties import base as penalties_lib


def test_lazy_ratio_counts_the_added_updates():
  entry = (("r1", penalties_lib.PENALTIES.get("r1"), 1.0),)
  eager = penalties_lib.PenaltyGroup("d", 1, entry)
  assert penalties_lib.lazy_ratio([eager]) == 1.0
  assert penalties_lib.lazy_ratio([penalties_lib.PenaltyGroup("d", 16, entry)]) == 16 / 17
  # Two lazy groups: 1 + 1/4 + 1/8 updates per minibatch.
  assert penalties_lib.lazy_ratio([penalties_lib.PenaltyGroup("d", 4, entry),
                            penalties_lib.PenaltyGroup("d", 8, entry)]) == (
                                pytest.approx(1 / (1 + 1 / 4 + 1 / 8)))


def test_penalty_groups_are_per_network():
  config = ml_collections.ConfigDict({
      "names": "r1,pl,r2", "r1": {"weight": 1.0, "interval": 16},
      "r2": {"weight": 2.0, "interval": 16},
      "pl": {"weight": 2.0, "interval": 4}})
  (d_group,) = penalties_lib.penalty_groups(config, "d")
  assert (d_group.network, d_group.interval) == ("d", 16)
  assert [name for name, _, _ in d_group.penalties] == ["r1", "r2"]
  (g_group,) = penalties_lib.penalty_groups(config, "g")
  assert (g_group.network, g_group.interval) == ("g", 4)
  assert [name for name, _, _ in g_group.penalties] == ["pl"]


def test_an_unknown_penalty_lists_the_valid_ones():
  names = penalties_lib.PENALTIES.names()
  assert {"gp", "pl", "r1", "r2"} <= set(names)
  with pytest.raises(UserError, match=f"penalties.names; valid: "
                     f"{', '.join(names)}$"):
    penalties_lib.PENALTIES.get("r3")
