"""The ALD system and the schedules that run it (docs/design.md, "The data flow").

One module per schedule:

* ``lockstep``: ``run_lockstep``, the stages in a fixed order on one thread (``mode=lockstep``);
* ``threaded``: ``ThreadedRun`` / ``run_threaded``, one thread per stage (``mode=threaded``);
* ``ray``: ``RayActors``, the threaded schedule's actors as Ray processes (``runtime=ray``);
* ``fused``: a whole iteration as one jitted function over seeds (``mode=fused``), and
  ``fused_program``, its seeds' host side as a program of the driver loop;
* ``programs``: the lockstep and threaded schedules as programs of the driver loop
  (``ald_jax.driver``, one loop for every mode).

and the stages they share:

* ``system``: ``System``, a run's state and its stage methods (act, runner, replay, learn,
  distill), ``stage_context``; with ``counters`` (``RunStats``: counters, episode window, last
  metrics, the metric row), ``readback`` (``Readback``: finishing dispatched updates),
  ``evaluation`` (the policy evaluation) and ``system_state`` (the checkpoint state);
* ``params``: ``ParamServer``, the versioned parameter hand-off;
* ``calls``: ``ActorCall``, ``CallQueues``, ``Dispatched``, ``InFlight``;
* ``supervision``: ``Supervisor``, the threads' heartbeats, restarts and stops;
* ``warmup``: ``warm_up``, every function compiled before a schedule starts.

The names below are re-exported here for ``from ald_jax.runtime import ...``; ``ray``,
``fused``, ``fused_program`` and ``programs`` are imported only by the modes that use them.
"""

from ald_jax.runtime.calls import ActorCall, CallQueues, Dispatched, InFlight
from ald_jax.runtime.counters import Counters
from ald_jax.runtime.evaluation import EVAL_COLUMNS
from ald_jax.runtime.lockstep import run_lockstep
from ald_jax.runtime.params import ParamServer, Published
from ald_jax.runtime.supervision import Stop, Supervisor
from ald_jax.runtime.system import System, stage_context
from ald_jax.runtime.threaded import DISPATCH_AHEAD, ThreadedRun, run_threaded
from ald_jax.runtime.warmup import warm_up

__all__ = [
    "DISPATCH_AHEAD",
    "EVAL_COLUMNS",
    "ActorCall",
    "CallQueues",
    "Counters",
    "Dispatched",
    "InFlight",
    "ParamServer",
    "Published",
    "Stop",
    "Supervisor",
    "System",
    "ThreadedRun",
    "run_lockstep",
    "run_threaded",
    "stage_context",
    "warm_up",
]
