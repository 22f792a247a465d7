"""The one driver loop of every mode (docs/design.md, "The host layer").

``drive`` runs a *program* until its budget, a signal or a failure, the same way for every
schedule: it advances the program, writes the metric rows every ``log_interval`` seconds,
checkpoints when one is due and the program is at a point a resume continues exactly from,
and on the way out writes the final rows and checkpoint. A program is one of
``runtime.programs.LockstepProgram``, ``ThreadedProgram`` (threads or Ray actors) or
``runtime.fused_program.FusedProgram``; what the loop asks of it:

* ``start()`` / ``advance(elapsed)`` / ``stop()``: begin; do the next piece of work (lockstep: one
  actor call and its runner group; threaded: supervise the threads for 0.1 s; fused: one
  dispatch); end (join threads and re-raise their failures);
* ``done(elapsed)``: every seed met its stop rule (``Budget``); ``at_boundary()``: a checkpoint
  taken now resumes exactly; ``learner_updates()`` / ``env_steps()``: progress;
* ``rows(elapsed)``: each seed's metric row (``ald_jax.rows.make_row``), None for a seed with
  nothing new to write;
* ``state_dict`` / ``state_template`` / ``load_state_dict``: what ``Checkpointer`` saves.

Signals (``Signals``): the first SIGINT, or a preemption signal (``preempt_signals``, SIGTERM and
SIGUSR1 by default), asks for a clean stop: the loop ends, the final rows and checkpoint are
written, and the run exits 0 (SIGINT) or ``EXIT_PREEMPTED`` (a preemption signal, so that a job
script can requeue). A second SIGINT aborts at once (``KeyboardInterrupt``, no final checkpoint;
the earlier ones stay).
"""

from __future__ import annotations

import signal
import threading
import time

from ald_jax.heap import trim_heap

#: Exit status of a run stopped by a preemption signal after its checkpoint (EX_TEMPFAIL: try
#: again); a job script requeues on it (README, "Clusters and preemption").
EXIT_PREEMPTED = 75
#: Exit status of a run aborted by a second Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_ABORTED = 130
#: how often the loop hands the C heap's free pages back (``trim_heap``): a threaded imaze9 run's
#: resident size rose by ~500 MB and fell back every few minutes as glibc kept and released
#: what its threads freed
TRIM_SECONDS = 60.0


class Budget:
    """When a seed stops: its env-step budget, its wall-clock budget (``max_seconds``, 0 = none)
    or its success target (``stop_at_success`` over a full window of ``stats_window`` episodes,
    0 = off)."""

    def __init__(
        self, total_env_steps: int, max_seconds: float, stop_at_success: float, stats_window: int
    ):
        self.total_env_steps = total_env_steps
        self.max_seconds = max_seconds
        self.stop_at_success = stop_at_success
        self.stats_window = stats_window

    def reached(self, env_steps: int, elapsed: float, successes: list) -> bool:
        over_time = self.max_seconds > 0 and elapsed >= self.max_seconds
        solved = (
            self.stop_at_success > 0
            and len(successes) == self.stats_window
            and sum(successes) / len(successes) >= self.stop_at_success
        )
        return env_steps >= self.total_env_steps or over_time or solved


class Signals:
    """Turns SIGINT and the preemption signals into a stop request while the loop runs (main
    thread only; elsewhere nothing is installed). ``reason``: None, ``"interrupted"`` or
    ``"preempted"``."""

    def __init__(self, preempt: tuple[str, ...] = ("TERM", "USR1"), log=print):
        self.preempt = [getattr(signal, f"SIG{name}") for name in preempt]
        self.reason: str | None = None
        self.log = log
        self._previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, *self.preempt):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.reason is not None:
            self.log("\n[ald-jax] second interrupt: aborting without a final checkpoint")
            raise KeyboardInterrupt
        if self.reason is None:
            self.reason = "interrupted" if signum == signal.SIGINT else "preempted"
            name = signal.Signals(signum).name
            self.log(
                f"\n[ald-jax] {name}: {self.reason}; stopping and writing a checkpoint "
                "(a second Ctrl-C aborts)"
            )

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def ignore_preemption(self) -> None:
        """While the final checkpoint is written a further preemption signal must not lose it
        (SIGINT still aborts: the second Ctrl-C is the user's way out)."""
        for sig in self.preempt:
            if sig in self._previous:
                signal.signal(sig, signal.SIG_IGN)


def drive(program, reporter, checkpointer, offset: float, signals: Signals) -> str:
    """Runs ``program`` until it is done or a signal asks it to stop; returns why it ended:
    ``"budget"``, ``"interrupted"`` or ``"preempted"``. ``offset``: the wall-clock seconds of
    the run so far (a resume goes on from its checkpoint's). A failure of the program is raised
    after its threads are stopped; the checkpoints written before it stay."""
    start = time.perf_counter() - offset
    elapsed = lambda: time.perf_counter() - start  # noqa: E731
    trimmed = elapsed()
    with signals:
        program.start()
        try:
            while signals.reason is None and not program.done(elapsed()):
                program.advance(elapsed)
                reporter.tick(program, elapsed())
                if program.at_boundary() and checkpointer.due(program.learner_updates()):
                    checkpointer.save(program, elapsed())
                if elapsed() - trimmed >= TRIM_SECONDS:
                    trimmed = elapsed()
                    trim_heap(collect=False)
            if signals.reason is None:  # the row the stop rule saw: threads stopping may add
                reporter.tick(program, elapsed(), force=True)  # episodes that move the window
        finally:
            try:
                program.stop()
            finally:
                reporter.tick(program, elapsed(), force=True)
        signals.ignore_preemption()
        checkpointer.save(program, elapsed())
    return signals.reason or "budget"
