"""Flax networks with one recurrent interface: the LSTM actor, the GTrXL learner and the
Asymm-AC pair (LSTM policy, GTrXL value), and the observation torso both use
(``ald_jax.networks.torso``). See ``ald_jax.networks.base`` for the interface and docs/design.md,
"Networks" for the settled choices."""

from ald_jax.networks.asymmetric import AsymmetricNetwork, AsymmetricState
from ald_jax.networks.base import Params, RecurrentNetwork, State, flatten_obs
from ald_jax.networks.gtrxl import GTrXLNetwork, GTrXLState, sinusoid_encoding
from ald_jax.networks.lstm import LSTMNetwork, LSTMState
from ald_jax.networks.torso import TORSOS, Torso, resolve_torso

__all__ = [
    "AsymmetricNetwork",
    "AsymmetricState",
    "GTrXLNetwork",
    "GTrXLState",
    "LSTMNetwork",
    "LSTMState",
    "Params",
    "RecurrentNetwork",
    "State",
    "TORSOS",
    "Torso",
    "flatten_obs",
    "resolve_torso",
    "sinusoid_encoding",
]
