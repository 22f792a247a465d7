"""The V-MPO learner update (Song et al. 2020), as used by every method of the paper (§5).

``make_learner_update`` builds a pure ``update(state, batch) -> (state, metrics)``:

* the online network is unrolled over the chunk and its bootstrap observation (``T+1`` steps)
  from the learner state the runner recorded (``batch.learner.state``);
* values are PopArt-normalised (docs/design.md, "Losses"): returns are computed in return units,
  the value loss and the advantages in normalised units;
* returns are V-trace (ALD: the data comes from the actor policy) or plain n-step (baselines);
* the V-MPO target policy is ``batch.learner.logits``: the learner runner holds the target network
  (it receives new params every ``K_L`` updates), so its outputs *are* the target network's;
* ALD adds the learner→actor regulariser ``learner_reg * KL(pi_A || pi_L)`` (the paper's §3,
  Eq. 1) with the actor's behaviour logits held fixed (``learner_reg_kl`` picks the direction);
* off-policy switches (issue 27, cause 4; off in ``make_learner_update``, ALD's config turns
  ``vmpo_importance`` on and ``vtrace_pg_rho`` off): ``vmpo_importance`` weights the E-step's
  sampled actions by ``pi_target / pi_A`` (self-normalised), and ``vtrace_pg_rho=False`` feeds
  V-MPO the V-trace advantage ``r_t + gamma v_{s,t+1} - V(x_t)`` without its ``min(1, rho_t)``;
* after the gradient step PopArt's statistics move and the stored value heads (online and target)
  are rescaled so their unnormalised outputs are preserved;
* the target network copy is refreshed every ``target_period`` updates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from ald_jax.learners.guard import guarded
from ald_jax.losses import (
    PopArtState,
    learner_regularizer_loss,
    nstep_returns,
    popart_init,
    popart_update,
    preserve_outputs,
    value_loss,
    vmpo_loss,
    vtrace,
)
from ald_jax.losses import popart as popart_lib
from ald_jax.types import PyTree, Trajectory


class Duals(NamedTuple):
    """Raw (pre-softplus) V-MPO Lagrange multipliers; eta = softplus(eta_raw) + 1e-8."""

    eta_raw: chex.Array
    alpha_raw: chex.Array


class LearnerState(NamedTuple):
    """Everything the learner update reads and writes.

    Attributes:
      params: online network params.
      target_params: target network params (what the learner runner acts with).
      duals: V-MPO temperature and KL multipliers (raw).
      opt_state: Adam state over ``(params, duals)``.
      popart: PopArt statistics of the value targets.
      step: number of updates done (int32 scalar).
    """

    params: PyTree
    target_params: PyTree
    duals: Duals
    opt_state: optax.OptState
    popart: PopArtState
    step: chex.Array


def inverse_softplus(x: float) -> float:
    """raw such that softplus(raw) == x (for the initial dual values)."""
    with jax.ensure_compile_time_eval():  # a constant, also while tracing (fused init)
        return float(jnp.log(jnp.expm1(jnp.asarray(x, jnp.float32))))


def init_learner_state(
    params: PyTree, optimizer: optax.GradientTransformation, *, eta_init: float, alpha_init: float
) -> LearnerState:
    """Initial learner state: target = online, duals at their configured initial values."""
    duals = Duals(
        eta_raw=jnp.asarray(inverse_softplus(eta_init), jnp.float32),
        alpha_raw=jnp.asarray(inverse_softplus(alpha_init), jnp.float32),
    )
    return LearnerState(
        params=params,
        target_params=jax.tree.map(jnp.copy, params),
        duals=duals,
        opt_state=optimizer.init((params, duals)),
        popart=popart_init(),
        step=jnp.zeros((), jnp.int32),
    )


def unroll_with_bootstrap(network: Any, params: PyTree, batch: Trajectory, state: PyTree):
    """Unroll over ``obs[:T]`` from ``state``, then one incremental ``step`` on ``obs[T]``.

    Returns ``(out, state_T)`` where ``out`` has ``T+1`` steps and ``state_T`` is the recurrent
    state after ``obs[T-1]`` (the state the stream's next chunk starts from). The learner runner
    uses this; the learner itself, which needs no state, unrolls all ``T+1`` steps at once.
    """
    out, state_t = network.unroll(params, batch.obs[:-1], batch.first[:-1], state)
    boot, _ = network.step(params, batch.obs[-1], state_t, batch.first[-1])
    out = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]], axis=0), out, boot)
    return out, state_t


class _LossSettings(NamedTuple):
    gamma: float
    use_vtrace: bool
    epsilon_eta: float
    epsilon_alpha: float
    top_k_fraction: float
    value_coef: float
    learner_reg: float
    learner_reg_kl: str = "actor_learner"
    vmpo_importance: bool = False
    vtrace_pg_rho: bool = True


def _returns_and_advantages(
    v, logits, batch: Trajectory, gamma: float, use_vtrace: bool, pg_rho: bool = True
):
    """Value targets and policy advantages ``[T, B]`` in return units, from the learner's
    unnormalised values ``v [T+1, B]`` (V-trace for ALD, n-step for the baselines). With
    ``pg_rho=False`` the V-trace advantage is ``r_t + gamma_t v_{s,t+1} - V(x_t)``, without the
    ``min(1, rho_t)`` factor."""
    discount_t = gamma * batch.discount
    if use_vtrace:
        log_rhos = _log_ratio(logits, batch.behaviour_logits, batch.action)
        ret = vtrace(v[:-1], v[1:], batch.reward, discount_t, jax.lax.stop_gradient(log_rhos))
        if pg_rho:
            return ret.vs, ret.pg_advantages
        vs_tp1 = jnp.concatenate([ret.vs[1:], v[-1:]], axis=0)
        return ret.vs, batch.reward + discount_t * vs_tp1 - v[:-1]
    returns = nstep_returns(v[1:], batch.reward, discount_t)
    return returns, returns - v[:-1]


def _log_ratio(pi_logits, mu_logits, action):
    """``log pi(a_t|s_t) - log mu(a_t|s_t)`` ``[T, B]`` of the taken actions."""
    log_pi = jax.nn.log_softmax(pi_logits)
    log_mu = jax.nn.log_softmax(mu_logits)
    return jnp.take_along_axis(log_pi - log_mu, action[..., None], -1)[..., 0]


def _learner_loss(network, hp: _LossSettings, params, duals, popart, batch: Trajectory):
    """The V-MPO learner loss; returns ``(total, (metrics, returns))``."""
    mask = batch.valid.astype(jnp.float32)
    # All T+1 steps in one unroll (the bootstrap value is the last); no state needed here.
    out, _ = network.unroll(params, batch.obs, batch.first, batch.learner.state)
    logits = out.logits[:-1]
    v_norm = out.value  # [T+1, B], normalised
    v = jax.lax.stop_gradient(popart_lib.unnormalize(popart, v_norm))
    returns, advantages = _returns_and_advantages(
        v, logits, batch, hp.gamma, hp.use_vtrace, hp.vtrace_pg_rho
    )
    norm_returns = popart_lib.normalize(popart, returns)
    norm_adv = jax.lax.stop_gradient(advantages / popart_lib.sigma(popart))

    v_loss = value_loss(v_norm[:-1], norm_returns, mask)
    log_weights = None
    if hp.vmpo_importance:  # pi_target / pi_A of the sampled actions
        log_weights = _log_ratio(batch.learner.logits[:-1], batch.behaviour_logits, batch.action)
    pi_loss, pi_stats = vmpo_loss(
        logits,
        batch.learner.logits[:-1],
        batch.action,
        norm_adv,
        mask,
        duals.eta_raw,
        duals.alpha_raw,
        epsilon_eta=hp.epsilon_eta,
        epsilon_alpha=hp.epsilon_alpha,
        top_k_fraction=hp.top_k_fraction,
        log_weights=log_weights,
    )
    total = pi_loss + hp.value_coef * v_loss
    reg = jnp.zeros(())
    if hp.learner_reg > 0.0:
        reg = learner_regularizer_loss(logits, batch.behaviour_logits, mask, hp.learner_reg_kl)
        total = total + hp.learner_reg * reg
    metrics = {
        "loss/total": total,
        "loss/policy": pi_loss,
        "loss/value": v_loss,
        "loss/learner_reg": reg,
        "returns_mean": _masked_mean(returns, mask),
        "advantage_mean": _masked_mean(advantages, mask),
        **{f"vmpo/{k}": v for k, v in _as_dict(pi_stats).items()},
        **policy_stats("learner", logits, mask),
        **policy_stats("actor", batch.behaviour_logits, mask),
    }
    return total, (metrics, returns)


def _popart_step(network, state: LearnerState, params, returns, valid, decay: float):
    """PopArt: move the statistics, then preserve the unnormalised outputs of the online and
    target value heads (docs/design.md, "Losses"); returns ``(popart, params, target)``."""
    popart = popart_update(state.popart, returns, valid, decay)
    params = _rescale_value_head(network, params, state.popart, popart)
    target_params = _rescale_value_head(network, state.target_params, state.popart, popart)
    return popart, params, target_params


def _guard_update(state: LearnerState, new_state: LearnerState, metrics: dict, grads):
    """NaN/Inf anywhere: skip this update (state unchanged) and say what broke."""
    losses = {k[len("loss/") :]: v for k, v in metrics.items() if k.startswith("loss/")}
    new_state, flags = guarded(state, new_state, losses, grads, (new_state.params, new_state.duals))
    metrics = {
        **metrics,
        **flags,
        "popart/mu": new_state.popart.mu,
        "popart/sigma": popart_lib.sigma(new_state.popart),
        "grad_norm": optax.tree.norm(grads[0]),
    }
    return new_state, metrics


def make_learner_update(
    network: Any,
    optimizer: optax.GradientTransformation,
    *,
    gamma: float,
    use_vtrace: bool,
    epsilon_eta: float = 0.1,
    epsilon_alpha: float = 0.004,
    top_k_fraction: float = 0.5,
    target_period: int = 10,
    popart_decay: float = 3e-4,
    value_coef: float = 1.0,
    learner_reg: float = 0.0,
    learner_reg_kl: str = "actor_learner",
    vmpo_importance: bool = False,
    vtrace_pg_rho: bool = True,
) -> Callable[[LearnerState, Trajectory], tuple[LearnerState, dict]]:
    """Builds the (un-jitted) V-MPO learner update.

    Args:
      network: a recurrent network (``unroll``, ``value_head``, ``with_value_head``).
      optimizer: optax transformation over ``(params, duals)`` (the paper: Adam 1e-4, no clip).
      gamma: discount factor.
      use_vtrace: V-trace returns/advantages (ALD) or plain n-step returns (baselines).
      epsilon_eta, epsilon_alpha, top_k_fraction: V-MPO constants (docs/design.md, "Losses").
      target_period: K_L, updates between target-network refreshes.
      popart_decay: PopArt statistics step size.
      value_coef: weight of the value loss.
      learner_reg: weight of KL(pi_A || pi_L) pulling the learner to the actor (ALD); 0 = off.
      learner_reg_kl: its direction, ``"actor_learner"`` or ``"learner_actor"`` (losses.distill).
      vmpo_importance: weight the E-step's sampled actions by ``pi_target(a) / pi_A(a)``.
      vtrace_pg_rho: multiply the V-trace advantage by ``min(1, rho)`` (V-trace's own form).

    Returns:
      ``update(state, batch) -> (state, metrics)``; ``batch`` is a time-major ``Trajectory``
      with the runner's fields attached.
    """

    hyper = _LossSettings(gamma, use_vtrace, epsilon_eta, epsilon_alpha, top_k_fraction,
                          value_coef, learner_reg, learner_reg_kl, vmpo_importance,
                          vtrace_pg_rho)  # fmt: skip
    loss_fn = functools.partial(_learner_loss, network, hyper)

    def update(state: LearnerState, batch: Trajectory) -> tuple[LearnerState, dict]:
        chex.assert_rank([batch.action, batch.reward, batch.discount, batch.valid], 2)
        chex.assert_equal_shape([batch.action, batch.reward, batch.discount, batch.valid])
        grad_fn = jax.grad(loss_fn, argnums=(0, 1), has_aux=True)
        grads, (metrics, returns) = grad_fn(state.params, state.duals, state.popart, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, (state.params, state.duals))
        params, duals = optax.apply_updates((state.params, state.duals), updates)

        popart, params, target_params = _popart_step(
            network, state, params, returns, batch.valid, popart_decay
        )
        step = state.step + 1
        target_params = optax.periodic_update(params, target_params, step, target_period)
        new_state = LearnerState(params, target_params, duals, opt_state, popart, step)
        return _guard_update(state, new_state, metrics, grads)

    return update


def _rescale_value_head(network, params, old: PopArtState, new: PopArtState):
    kernel, bias = network.value_head(params)
    kernel, bias = preserve_outputs(kernel, bias, old, new)
    return network.with_value_head(params, kernel, bias)


def policy_stats(name: str, logits: chex.Array, mask: chex.Array) -> dict:
    """``entropy/<name>`` (nats) and ``max_prob/<name>``: masked means over ``[T, B]`` of a
    policy's entropy and its largest action probability (held fixed; diagnostics only). The
    learner's are on its batch, the actor's on the acting steps (the behaviour logits)."""
    logits = jax.lax.stop_gradient(logits)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    p = jnp.exp(log_p)
    entropy = -jnp.sum(jnp.where(p > 0, p * log_p, 0.0), axis=-1)
    return {
        f"entropy/{name}": _masked_mean(entropy, mask),
        f"max_prob/{name}": _masked_mean(jnp.max(p, axis=-1), mask),
    }


def _masked_mean(x: chex.Array, mask: chex.Array) -> chex.Array:
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _as_dict(stats) -> dict:
    if isinstance(stats, dict):
        return stats
    return stats._asdict()
