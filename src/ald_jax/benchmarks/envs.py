"""Environment throughput: env steps/s of ``jit(scan(vmap(env.step)))`` with random actions.

Figures (issue 2): ``env_sps.imaze9``, ``env_sps.imaze15``, ``env_sps.metafetch3``,
``env_sps.metafetch4``, and (issue 14) ``env_sps.xminigrid_memory16`` (XLand-MiniGrid
``MiniGrid-MemoryS16``) and ``env_sps.gymnax_memorychain`` (gymnax ``MemoryChain-bsuite``), with
4096 parallel environments, each the median over ``repeats`` timed
calls after a warm-up (compile) call. Each timed call draws the random actions and the per-env
step keys of the whole scan up front, as the actors do (split keys once per unroll: ``jax.random``
on CPU lowers threefry to a rolled loop, costly per scan step; docs/design.md, "Speed facts"),
and this is timed.
The scan carries the observations so that XLA cannot drop their computation; the reward sum and
the number of finished episodes are returned as a sanity check. Like the actor rollout, the
benchmark does not read ``info``, so ``info["final_obs"]`` is not computed; ``--with-info``
consumes it (and the episode statistics) too.

The two library figures time the *library's own* auto-resetting step, not our adapter's, so they
are the library's speed: gymnax ``env.step(key, state, action, params)``, XLand-MiniGrid
``GymAutoResetWrapper(env).step(params, timestep, action)`` (which takes no key: XLA drops the
unused key draw there). They are skipped, with a note, when the ``envs`` extra is not installed.

Run: ``python -m ald_jax.benchmarks.envs [--num-envs 4096] [--steps 256] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

import envs_jax

BENCH_ENVS = ("imaze9", "imaze15", "metafetch3", "metafetch4")
#: ``env_sps.<key>`` -> (library, id), timed with the library's own step.
LIBRARY_BENCH_ENVS = {
    "xminigrid_memory16": ("xminigrid", "MiniGrid-MemoryS16"),
    "gymnax_memorychain": ("gymnax", "MemoryChain-bsuite"),
}


def _library_env(name: str) -> tuple[int, Callable, Callable]:
    """``(num_actions, reset(keys) -> (obs, state), step(keys, state, actions) -> (obs, state,
    reward, done))`` batched over environments, from the library's own functions."""
    library, env_id = LIBRARY_BENCH_ENVS[name]
    if library == "gymnax":
        import gymnax

        env, params = gymnax.make(env_id)
        reset = jax.vmap(lambda k: env.reset(k, params))

        def step(keys, state, actions):
            obs, state, reward, done, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                keys, state, actions, params
            )
            return obs, state, reward, done

        return env.action_space(params).n, reset, step

    import xminigrid
    from xminigrid.wrappers import GymAutoResetWrapper

    env, params = xminigrid.make(env_id)
    env = GymAutoResetWrapper(env)

    def reset(keys):
        timestep = jax.vmap(lambda k: env.reset(params, k))(keys)
        return timestep.observation, timestep

    def step(keys, timestep, actions):
        del keys  # the key lives in the timestep's state
        timestep = jax.vmap(lambda t, a: env.step(params, t, a))(timestep, actions)
        return timestep.observation, timestep, timestep.reward, timestep.last()

    return env.num_actions(params), reset, step


def library_missing(name: str) -> str | None:
    """Why ``name`` (a ``LIBRARY_BENCH_ENVS`` key) cannot run here, or None."""
    library = LIBRARY_BENCH_ENVS[name][0]
    if importlib.util.find_spec(library) is None:
        return (
            f"{library} is not installed (the 'envs' extra: "
            ".venv/bin/pip install -c requirements.lock -e '.[envs]')"
        )
    return None


def make_runner(
    name: str, num_envs: int, num_steps: int, with_info: bool = False
) -> tuple[Callable, Callable]:
    """Returns ``(init(key) -> carry, run(carry) -> (carry, reward_sum, episodes))``, jitted.

    ``name``: an ``envs_jax`` name, or a ``LIBRARY_BENCH_ENVS`` key (the library's own step;
    ``with_info`` does not apply there).
    """
    if name in LIBRARY_BENCH_ENVS:
        num_actions, reset_batch, library_step = _library_env(name)
        params, with_info = None, False

        def step(keys, state, actions, _):
            obs, state, reward, done = library_step(keys, state, actions)
            return obs, state, reward, done, jnp.zeros_like(done), {}

    else:
        env, params = envs_jax.make(name)
        num_actions = env.num_actions
        step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
        reset_batch = jax.vmap(lambda k: env.reset(k, params))

    @jax.jit
    def init(key: jax.Array):
        obs, state = reset_batch(jax.random.split(key, num_envs))
        return state, ((obs, obs) if with_info else obs), key

    @jax.jit
    def run(carry):
        state, obs, key = carry
        key, action_key, step_key = jax.random.split(key, 3)
        actions = jax.random.randint(action_key, (num_steps, num_envs), 0, num_actions)
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
    """Writes ``env_sps.<name>`` (median env steps/s, float) into ``results`` for each env.

    A library figure whose library is missing is skipped with a note (and any old value dropped).
    """
    for name in (*BENCH_ENVS, *LIBRARY_BENCH_ENVS):
        missing = library_missing(name) if name in LIBRARY_BENCH_ENVS else None
        if missing:
            print(f"[bench] env_sps.{name} skipped: {missing}", flush=True)
            results.pop(f"env_sps.{name}", None)
            continue
        median, _, _, _ = measure(name, num_envs, num_steps, repeats)
        results[f"env_sps.{name}"] = float(median)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=256, help="scan length per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--envs", nargs="*", default=[*BENCH_ENVS, *LIBRARY_BENCH_ENVS])
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
    width = max(12, *(len(name) for name in args.envs))
    print(f"{'env':<{width}} {'median M steps/s':>17} {'min':>7} {'max':>7}  {'episodes/call':>13}")
    for name in args.envs:
        missing = library_missing(name) if name in LIBRARY_BENCH_ENVS else None
        if missing:
            print(f"{name:<{width}} skipped: {missing}")
            continue
        median, rates, _, episodes = measure(
            name, args.num_envs, args.steps, args.repeats, args.with_info
        )
        print(
            f"{name:<{width}} {median / 1e6:>17.2f} {min(rates) / 1e6:>7.2f}"
            f" {max(rates) / 1e6:>7.2f}  {episodes:>13d}"
        )


if __name__ == "__main__":
    main()
