"""The figures every time budget of ``make gpu-paper`` is derived from, with their sources.

``H200`` holds what was measured on the one GPU sitting so far (docs/results.md, "GPU: the first
run on one H200 (2026-12-04, main at 782d951)"; raw files in docs/results/h200-2026-12-04),
``ISSUE30`` the startup ratios measured on the CPU box when issue 30 cut the startup (same page,
"Startup and whole-system speed before and after issue 30"), and ``ASSUMED`` what no machine has
measured yet (the fused program on a GPU, process start and exit), each with its reason.
``--plan`` prints all three. ``Estimates`` turns them into seconds per run and replaces a guess
by the measured figure as soon as a run of the same kind has finished.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace

H200_SOURCE = (
    "docs/results.md 'GPU: the first run on one H200 (2026-12-04, main at 782d951)' and "
    "docs/results/h200-2026-12-04 (README.md, gpu_check.json)"
)
#: imaze9 profile=gpu, threaded, stop at 90% success, one H200 + 16 cores (2026-12-04).
H200 = {
    # "compile before the first update": ALD s0 with an empty cache; the first GTrXL / LSTM run
    # came after ALD had filled the shared cache; the later seeds of each method
    "compile_cold_s": {"ald": 59.8, "gtrxl": 26.2, "lstm": 19.1},
    "compile_warm_s": {"ald": [21.3, 25.6], "gtrxl": [21.6, 19.5], "lstm": [11.1]},
    # training seconds (compile excluded) and env steps to the stop at 90%, per seed
    "train_to_90_s": {"ald": [21.5, 21.1, 27.4], "gtrxl": [30.2, 43.0, 35.3], "lstm": [15.5, 13.8]},
    "steps_to_90": {
        "ald": [2.94e6, 3.25e6, 4.02e6],
        "gtrxl": [1.74e6, 2.19e6, 1.81e6],
        "lstm": [4.11e6, 3.98e6],
    },
    # the threaded system's env steps/s (gpu_check.json: ALD, GTrXL; the LSTM runs' own rows)
    "system_sps": {"ald": 149043.0, "gtrxl": 66483.0, "lstm": 277000.0},
    # gpu_check's two update benchmarks (GTrXL-2 learner, LSTM-32 distill), compiles included
    "learner_bench_s": 42.4,
    # metafetch4 ALD (GTrXL-4 learner, LSTM-128 actor): compile with a warm shared cache
    "metafetch4_compile_s": 55.3,
}
ISSUE30_SOURCE = "docs/results.md 'Startup and whole-system speed before and after issue 30'"
#: process launch -> first learner update, after / before issue 30 (debug, 2-core CPU): the H200
#: compile figures above predate issue 30, so the plan scales them by these measured ratios.
ISSUE30 = {"cold": 21.5 / 34.5, "warm": 5.9 / 18.3}
#: Not measured on any GPU yet: (value, why this value).
ASSUMED = {
    "process_s": (6.0, "launch + device start + final checkpoint and exit of one run (CPU: ~1 s)"),
    "doctor_s": (12.0, "the doctor's versions and devices (imports JAX, starts the GPU)"),
    "contention": (1.5, "parallel cache warm-up: its slowest compile, slowed by the others"),
    "fused_compile_cold_s": (59.8, "a fused program compiles like ALD's cold threaded set"),
    "fused_compile_warm_s": (10.0, "a fused program read back from the warmed cache"),
    "fused_over_threaded": (1.07, "fused 1 seed / threaded env steps/s (CPU, issue 29)"),
    "fused_seed_cost": (2.0, "16 seeds cost 2x one seed (issue 29's goal for a GPU)"),
    "fused_cap": (1.5, "a fused program stops at 1.5x its median seed's time to 90%"),
    "one_seed_s": (10.0, "training seconds of the 1-seed fused program: >= 5 dispatches"),
    "alone_s": (12.0, "the standalone learner updates, read back from the warmed cache"),
    "report_s": (12.0, "report.md, report.json and the plots"),
}
TRAIN_CAP = 2.5  # a threaded run stops at this many times its method's median time to 90%
FUSED_SEEDS = 16
METHODS = ("ald", "lstm", "gtrxl")  # stage 2's order within a seed (the issue's)


@dataclass
class Estimates:
    """Expected seconds of each piece of a plan. ``compile`` / ``train`` / ``sps`` are keyed by
    a run kind (``ald``, ``fused:ald:16``, ``meta:lstm`` ...); ``measured`` overrides them."""

    compile_cold: dict = field(default_factory=dict)
    compile_warm: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)
    sps: dict = field(default_factory=dict)
    constants: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)

    def const(self, name: str) -> float:
        return self.measured.get(name, self.constants[name])

    def compile_s(self, kind: str, warm: bool) -> float:
        """Compile seconds of ``kind``: measured once a run of it finished, else the figure."""
        if (kind, "compile", warm) in self.measured:
            return self.measured[(kind, "compile", warm)]
        table = self.compile_warm if warm else self.compile_cold
        return table.get(kind, table.get(kind.split(":")[-2] if ":" in kind else kind, 30.0))

    def train_s(self, kind: str) -> float:
        return self.measured.get((kind, "train"), self.train[kind])

    def run_s(self, kind: str, warm: bool = True, train: float | None = None) -> float:
        """One run: process start and exit, compile, training (``train`` or the estimate)."""
        train = self.train_s(kind) if train is None else train
        return self.const("process_s") + self.compile_s(kind, warm) + train

    def learn(
        self, kind: str, compile_s: float | None, overhead_s: float | None, warm: bool = True
    ) -> None:
        """A finished run's compile seconds (``warm``: with its programs already in the cache)
        and its process overhead replace the guesses."""
        if compile_s is not None:
            self.measured[(kind, "compile", warm)] = compile_s
        if overhead_s is not None:
            self.measured["process_s"] = max(overhead_s, 0.0)


def _median(values) -> float:
    return float(statistics.median(values if isinstance(values, list) else [values]))


def gpu_estimates(scaled: bool = True) -> Estimates:
    """Expected seconds on an H200-class GPU: ``H200``, the compile figures scaled by
    ``ISSUE30`` (``scaled``; False: as measured before issue 30), and ``ASSUMED``."""
    cold_k, warm_k = (ISSUE30["cold"], ISSUE30["warm"]) if scaled else (1.0, 1.0)
    constants = {k: v for k, (v, _) in ASSUMED.items()}
    est = Estimates(constants=constants)
    for m in METHODS:
        est.compile_cold[m] = H200["compile_cold_s"][m] * cold_k
        est.compile_warm[m] = _median(H200["compile_warm_s"][m]) * warm_k
        est.train[m] = _median(H200["train_to_90_s"][m])
        est.steps[m] = _median(H200["steps_to_90"][m])
        est.sps[m] = H200["system_sps"][m]
        est.compile_cold[f"meta:{m}"] = H200["metafetch4_compile_s"] * cold_k
        est.compile_warm[f"meta:{m}"] = est.compile_warm[m]
    for m in ("ald", "gtrxl"):
        per_seed = est.sps[m] * constants["fused_over_threaded"] / constants["fused_seed_cost"]
        kind = f"fused:{m}:{FUSED_SEEDS}"
        est.train[kind] = constants["fused_cap"] * est.steps[m] / per_seed
        est.compile_cold[kind] = constants["fused_compile_cold_s"]
        est.compile_warm[kind] = constants["fused_compile_warm_s"]
    est.train["fused:ald:1"] = constants["one_seed_s"]
    est.compile_cold["fused:ald:1"] = constants["fused_compile_cold_s"]
    est.compile_warm["fused:ald:1"] = constants["fused_compile_warm_s"]
    est.compile_cold["alone"] = H200["learner_bench_s"]
    est.compile_warm["alone"] = 0.0
    est.train["alone"] = constants["alone_s"]
    return est


#: Smoke mode on a 2-core CPU (debug task, tiny networks, seconds-long budgets): rough figures
#: of this repository's CI machine, only there to size the smoke run's stages.
SMOKE = {
    "compile_cold_s": 25.0,
    "compile_warm_s": 6.0,
    "train_s": 0.8,
    "fused_train_s": 0.8,
    "one_seed_s": 1.0,
    "process_s": 4.0,
    "doctor_s": 6.0,
    "report_s": 6.0,
    "alone_s": 6.0,
}


def smoke_estimates() -> Estimates:
    s = SMOKE
    constants = {k: v for k, (v, _) in ASSUMED.items()}
    constants.update(
        process_s=s["process_s"],
        doctor_s=s["doctor_s"],
        report_s=s["report_s"],
        one_seed_s=s["one_seed_s"],
        alone_s=s["alone_s"],
        contention=1.0,
    )
    est = Estimates(constants=constants)
    kinds = [*METHODS, *(f"meta:{m}" for m in METHODS)]
    kinds += ["fused:ald:2", "fused:gtrxl:2", "fused:ald:1", "alone"]
    for kind in kinds:
        est.compile_cold[kind] = s["compile_cold_s"]
        est.compile_warm[kind] = s["compile_warm_s"]
        est.train[kind] = s["fused_train_s"] if kind.startswith("fused") else s["train_s"]
    est.train["fused:ald:1"] = s["one_seed_s"]
    est.train["alone"] = s["alone_s"]
    est.compile_warm["alone"] = 0.0
    return replace(est)
