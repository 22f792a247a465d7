"""Issue 41, a toy of the collapse before the first reward: does V-MPO's policy drift to low
entropy when no reward arrives, and do the importance weights (``vmpo_importance``) speed it up?

One state, 4 actions, the policy a logit vector. Each update samples ``T x B`` actions from the
actor (the learner's policy ``lag`` updates ago, as the threaded schedule's acting policy lags),
gives them advantages of pure noise (no reward: what is left is value error), and takes one Adam
step on the project's own ``vmpo_loss`` (top-k, temperature and KL trust region to the target,
refreshed every ``target_period`` updates), with or without the weights pi_target / pi_actor.
Prints the policy's entropy over the uniform's after each block of updates, over ``--seeds`` toy
seeds (median and range).

    python -m experiments.collapse_toy [--updates 3000] [--seeds 16] [--lr 3e-3] [--lag 14] \\
        [--target-period 10] [--max-weight inf] [--learner-reg 0] [--json FILE]
"""

from __future__ import annotations

import argparse
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ald_jax.losses.distill import learner_regularizer_loss
from ald_jax.losses.vmpo import vmpo_loss

A, T, B = 4, 20, 64


def entropy(logits):
    p = jax.nn.softmax(logits)
    return -jnp.sum(p * jax.nn.log_softmax(logits))


def run(key, importance: bool, updates: int, lr: float, lag: int, target_period: int,
        max_weight: float = float("inf"), learner_reg: float = 0.0):  # fmt: skip
    """Entropy / log A after every update of one toy seed (weights truncated at ``max_weight``;
    ``learner_reg``: the weight of the regulariser towards the actor, KL(pi_actor || pi))."""
    opt = optax.adam(lr)
    params = {"logits": jnp.zeros(A), "eta_raw": jnp.asarray(0.5413), "alpha_raw": jnp.asarray(0.0)}
    state = opt.init(params)
    history = jnp.zeros((lag + 1, A))  # the learner's logits of the last lag+1 updates

    def loss(p, target, actor, actions, adv, log_w):
        online = jnp.broadcast_to(p["logits"], (T, B, A))
        tgt = jnp.broadcast_to(target, (T, B, A))
        mask = jnp.ones((T, B))
        total, _ = vmpo_loss(online, tgt, actions, adv, mask, p["eta_raw"], p["alpha_raw"],
                             log_weights=log_w)  # fmt: skip
        reg = learner_regularizer_loss(online, jnp.broadcast_to(actor, (T, B, A)), mask)
        return total + learner_reg * reg

    def step(carry, i):
        params, state, history, target, key = carry
        key, k1, k2 = jax.random.split(key, 3)
        actor = history[-1]  # lag updates old
        actions = jax.random.categorical(k1, actor, shape=(T, B))
        adv = jax.random.normal(k2, (T, B))
        log_ratio = jax.nn.log_softmax(target) - jax.nn.log_softmax(actor)
        log_w = jnp.minimum(log_ratio[actions], jnp.log(max_weight)) if importance else None
        grads = jax.grad(loss)(params, target, actor, actions, adv, log_w)
        updates_, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates_)
        history = jnp.concatenate([params["logits"][None], history[:-1]])
        target = jnp.where((i + 1) % target_period == 0, params["logits"], target)
        return (params, state, history, target, key), entropy(params["logits"]) / jnp.log(A)

    carry = (params, state, history, jnp.zeros(A), key)
    _, ent = jax.lax.scan(step, carry, jnp.arange(updates))
    return ent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--lag", type=int, default=14)
    parser.add_argument("--target-period", type=int, default=10)
    parser.add_argument("--max-weight", type=float, default=float("inf"), help="truncation")
    parser.add_argument("--learner-reg", type=float, default=0.0, help="KL to the actor")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    out = {"args": vars(args)}
    for importance in (True, False):
        one = functools.partial(
            run,
            importance=importance,
            updates=args.updates,
            lr=args.lr,
            lag=args.lag,
            target_period=args.target_period,
            max_weight=args.max_weight,
            learner_reg=args.learner_reg,
        )
        fn = jax.jit(jax.vmap(one))
        ent = np.asarray(fn(keys))  # [seeds, updates]
        blocks = range(args.updates // 10 - 1, args.updates, args.updates // 10)
        rows = [(i + 1, *np.percentile(ent[:, i], [0, 50, 100])) for i in blocks]
        out[f"importance={importance}"] = rows
        print(f"vmpo_importance={importance}: entropy / uniform after N updates (min median max)")
        for n, lo, med, hi in rows:
            print(f"  {n:6d}  {lo:.3f}  {med:.3f}  {hi:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
