"""Asymm-AC baseline model: an LSTM policy with a GTrXL value function (paper §5, "Baselines";
Pinto et al. 2018, Asymmetric Actor-Critic, with privileged compute instead of privileged state).

Same interface as the other networks (``ald_jax.networks.base``). Params are
``{"policy": lstm_params, "value": gtrxl_params}``; the state is ``AsymmetricState(policy, value)``.
Logits come from the LSTM, the (PopArt-normalised) value from the GTrXL; the two networks share
nothing. Actors run only the LSTM: ``policy_params(params)`` with ``network.policy.step``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import chex
import jax

from ald_jax.networks.base import Params
from ald_jax.networks.gtrxl import GTrXLNetwork, GTrXLState
from ald_jax.networks.lstm import LSTMNetwork, LSTMState
from ald_jax.types import ModelOutput


class AsymmetricState(NamedTuple):
    """``policy``: the LSTM's ``LSTMState``; ``value``: the GTrXL's ``GTrXLState``."""

    policy: LSTMState
    value: GTrXLState


@dataclasses.dataclass(frozen=True)
class AsymmetricNetwork:
    """LSTM policy + GTrXL value function.

    Attributes:
      policy: the LSTM network (its value head is unused).
      value: the GTrXL network (its policy head is unused).
    """

    policy: LSTMNetwork
    value: GTrXLNetwork

    def __post_init__(self) -> None:
        if self.policy.num_actions != self.value.num_actions:
            raise ValueError("policy and value networks must agree on num_actions")

    @property
    def num_actions(self) -> int:
        return self.policy.num_actions

    def init(self, key: chex.PRNGKey, obs_example: chex.Array) -> Params:
        """``{"policy": ..., "value": ...}`` from one observation ``[*obs_shape]``."""
        policy_key, value_key = jax.random.split(key)
        return {
            "policy": self.policy.init(policy_key, obs_example),
            "value": self.value.init(value_key, obs_example),
        }

    def initial_state(self, batch: int) -> AsymmetricState:
        return AsymmetricState(self.policy.initial_state(batch), self.value.initial_state(batch))

    @staticmethod
    def policy_params(params: Params) -> Params:
        """The LSTM's params, for actors that run ``network.policy`` alone."""
        return params["policy"]

    def step(
        self,
        params: Params,
        obs: chex.Array,
        state: AsymmetricState,
        first: chex.Array | None = None,
    ) -> tuple[ModelOutput, AsymmetricState]:
        """``obs [B, *obs_shape]`` -> ``ModelOutput(LSTM logits [B, A], GTrXL value [B])``."""
        pi_out, pi_state = self.policy.step(params["policy"], obs, state.policy, first)
        v_out, v_state = self.value.step(params["value"], obs, state.value, first)
        return ModelOutput(pi_out.logits, v_out.value), AsymmetricState(pi_state, v_state)

    def unroll(
        self, params: Params, obs: chex.Array, first: chex.Array, state: AsymmetricState
    ) -> tuple[ModelOutput, AsymmetricState]:
        """``obs [T, B, *obs_shape]`` -> ``ModelOutput(logits [T, B, A], value [T, B])``."""
        pi_out, pi_state = self.policy.unroll(params["policy"], obs, first, state.policy)
        v_out, v_state = self.value.unroll(params["value"], obs, first, state.value)
        return ModelOutput(pi_out.logits, v_out.value), AsymmetricState(pi_state, v_state)

    def value_head(self, params: Params) -> tuple[chex.Array, chex.Array]:
        """The GTrXL's value layer ``(kernel [F, 1], bias [1])``."""
        return self.value.value_head(params["value"])

    def with_value_head(self, params: Params, kernel: chex.Array, bias: chex.Array) -> Params:
        """``params`` with the GTrXL's value layer replaced."""
        return {**params, "value": self.value.with_value_head(params["value"], kernel, bias)}
