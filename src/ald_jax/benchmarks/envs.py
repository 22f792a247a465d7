"""Environment throughput: env steps/s of ``jit(scan(vmap(env.step)))`` with random actions.

Figures (issue 2): ``env_sps.imaze9``, ``env_sps.imaze15``, ``env_sps.metafetch3``,
``env_sps.metafetch4`` with 4096 parallel environments, each the median over ``repeats`` timed
calls after a warm-up (compile) call. Each timed call draws the random actions and the per-env
step keys of the whole scan up front, as the actors do (split keys once per unroll: ``jax.random``
on CPU lowers threefry to a rolled loop, costly per scan step; docs/design.md, "Speed facts"),
and this is timed.
The scan carries the observations so that XLA cannot drop their computation; the reward sum and
the number of finished episodes are returned as a sanity check. Like the actor rollout, the
benchmark does not read ``info``, so ``info["final_obs"]`` is not computed; ``--with-info``
consumes it (and the episode statistics) too.

Run: ``python -m ald_jax.benchmarks.envs [--num-envs 4096] [--steps 256] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

import envs_jax

BENCH_ENVS = ("imaze9", "imaze15", "metafetch3", "metafetch4")


def make_runner(
    name: str, num_envs: int, num_steps: int, with_info: bool = False
) -> tuple[Callable, Callable]:
    """Returns ``(init(key) -> carry, run(carry) -> (carry, reward_sum, episodes))``, jitted."""
    env, params = envs_jax.make(name)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def init(key: jax.Array):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)
        return state, ((obs, obs) if with_info else obs), key

    @jax.jit
    def run(carry):
        state, obs, key = carry
        key, action_key, step_key = jax.random.split(key, 3)
        actions = jax.random.randint(action_key, (num_steps, num_envs), 0, env.num_actions)
        keys = jax.random.split(step_key, num_steps * num_envs)
        keys = keys.reshape(num_steps, num_envs, *keys.shape[1:])

        def body(inner, xs):
            state, obs, reward_sum, episodes = inner
            action, step_keys = xs
            new_obs, state, reward, terminated, truncated, info = step(
                step_keys, state, action, params
            )
            if with_info:
                obs = (new_obs, info["final_obs"])
                reward_sum = reward_sum + info["episode_return"].sum() + info["success"].sum()
            else:
                obs = new_obs
            reward_sum = reward_sum + reward.sum()
            episodes = episodes + jnp.sum(terminated | truncated)
            return (state, obs, reward_sum, episodes), None

        zero = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        (state, obs, reward_sum, episodes), _ = jax.lax.scan(
            body, (state, obs, *zero), (actions, keys)
        )
        return (state, obs, key), reward_sum, episodes

    return init, run


def measure(
    name: str, num_envs: int = 4096, num_steps: int = 256, repeats: int = 5, with_info: bool = False
) -> tuple[float, list[float], float, int]:
    """Median env steps/s for ``name``; also the per-repeat list, reward sum and episode count."""
    init, run = make_runner(name, num_envs, num_steps, with_info)
    carry = init(jax.random.PRNGKey(0))
    carry, reward_sum, episodes = jax.block_until_ready(run(carry))  # compile + warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        carry, reward_sum, episodes = jax.block_until_ready(run(carry))
        rates.append(num_envs * num_steps / (time.perf_counter() - start))
    return statistics.median(rates), rates, float(reward_sum), int(episodes)


def run(results: dict, repeats: int = 5, num_envs: int = 4096, num_steps: int = 256) -> None:
    """Writes ``env_sps.<name>`` (median env steps/s, float) into ``results`` for each env."""
    for name in BENCH_ENVS:
        median, _, _, _ = measure(name, num_envs, num_steps, repeats)
        results[f"env_sps.{name}"] = float(median)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=256, help="scan length per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--envs", nargs="*", default=list(BENCH_ENVS))
    parser.add_argument(
        "--with-info", action="store_true", help="also consume info (final_obs, episode stats)"
    )
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.num_envs} envs x {args.steps} steps per call, median of {args.repeats} calls; "
        f"{os.cpu_count()} CPUs, load average {load:.2f} before the run"
        + (", info consumed" if args.with_info else "")
    )
    print(f"{'env':<12} {'median M steps/s':>17} {'min':>7} {'max':>7}  {'episodes/call':>13}")
    for name in args.envs:
        median, rates, _, episodes = measure(
            name, args.num_envs, args.steps, args.repeats, args.with_info
        )
        print(
            f"{name:<12} {median / 1e6:>17.2f} {min(rates) / 1e6:>7.2f} {max(rates) / 1e6:>7.2f}"
            f"  {episodes:>13d}"
        )


if __name__ == "__main__":
    main()
