"""The paper's figures (matplotlib, ``Agg``): per-method IQM curves with bootstrap bands,
learner vs actor evaluations with the policies' entropy, per-seed curves, the speed table.

Each ``plot_*`` / ``speed_table`` draws what ``experiments.plots.stats`` computes and writes one
PNG; ``experiments.plots.report.make_all`` names the files.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.plots.stats import EVAL_X, SPEED_COLUMNS, Band, iqm_band  # noqa: E402

CURVES = (
    ("success_rate", "success", "success rate"),
    ("episode_return", "return", "episode return"),
)
X_AXES = (("env_steps", "steps", "env steps"), ("wall_time", "wallclock", "wall-clock (s)"))
#: The learner-vs-actor figure's curves: (label, x column, y column, line style).
EVAL_CURVES = (
    ("learner policy (eval)", EVAL_X, "learner_eval/success", {}),  # C0
    ("actor (eval)", EVAL_X, "actor_eval/success", {}),  # C1
    ("training success", "env_steps", "success_rate", {"ls": "--", "color": "grey"}),
)
#: Its lower panel, where the runs logged them (issue 41): each policy's entropy in nats, the
#: learner's on its batch and the actor's on its acting steps.
ENTROPY_CURVES = (
    ("learner policy", "env_steps", "entropy/learner", {"color": "C0"}),
    ("actor", "env_steps", "entropy/actor", {"color": "C1"}),
)


def draw_band(ax, band: Band, label: str, **line) -> None:
    (drawn,) = ax.plot(band.grid, band.iqm, label=f"{label} (n={band.n})", **line)
    ax.fill_between(band.grid, band.lo, band.hi, color=drawn.get_color(), alpha=0.2)


def style_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels, title, grid, and a legend where something was labelled."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def finish(fig, ax, path: str, xlabel: str, ylabel: str, title: str) -> str:
    style_axes(ax, xlabel, ylabel, title)
    return save(fig, path)


def plot_iqm(
    runs, x: str, y: str, path: str, xlabel: str, ylabel: str, title: str
) -> dict[str, Band]:
    """Per group, the IQM over seeds of ``y`` against ``x`` with its band; returns the bands
    drawn."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bands = {}
    for group, seeds in runs.items():
        if (band := iqm_band(list(seeds.values()), x, y)) is not None:
            draw_band(ax, band, group)
            bands[group] = band
    finish(fig, ax, path, xlabel, ylabel, title)
    return bands


def plot_eval(group: str, seeds: dict[int, dict[str, np.ndarray]], path: str) -> dict | None:
    """Learner-policy and actor evaluation success against ``eval/env_steps`` (IQM over seeds,
    band) and the training success for reference; below, on the same env-step axis, where the
    runs logged ``entropy/learner`` / ``entropy/actor``, each policy's entropy
    (``draw_entropy``). Runs without those columns (older runs) get the upper panel alone.
    Returns the bands drawn, by column, None (nothing drawn) if no seed logged evaluations."""
    cols = list(seeds.values())
    bands = {y: iqm_band(cols, x, y) for _, x, y, _ in EVAL_CURVES}
    if bands["learner_eval/success"] is None or bands["actor_eval/success"] is None:
        return None
    entropy = {y: b for _, x, y, _ in ENTROPY_CURVES if (b := iqm_band(cols, x, y)) is not None}
    if entropy:
        fig, (ax, low) = plt.subplots(
            2, 1, sharex=True, figsize=(6, 6.5), gridspec_kw={"height_ratios": (3, 2)}
        )
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
    for name, _, y, line in EVAL_CURVES:
        if bands[y] is not None:
            draw_band(ax, bands[y], name, **line)
    title = f"{group}: learner vs actor"
    if not entropy:
        finish(fig, ax, path, "env steps", "success rate", title)
        return bands
    style_axes(ax, "", "success rate", title)
    draw_entropy(low, cols, entropy)
    style_axes(low, "env steps", "policy entropy (nats)", "")
    save(fig, path)
    return bands | entropy


def draw_entropy(ax, cols: list[dict[str, np.ndarray]], bands: dict[str, Band]) -> None:
    """Every seed's entropy as a thin line, and the IQM over seeds with its band on top (one
    collapsed seed among many shows as a thin line the IQM does not follow)."""
    for name, x, y, line in ENTROPY_CURVES:
        if y not in bands:
            continue
        for c in cols:
            if x in c and y in c:
                ok = np.isfinite(c[x]) & np.isfinite(c[y])
                ax.plot(c[x][ok], c[y][ok], lw=0.6, alpha=0.35, **line)
        draw_band(ax, bands[y], name, **line)


def plot_per_seed(runs, path: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (group, seeds) in enumerate(runs.items()):
        for j, (_, cols) in enumerate(sorted(seeds.items())):
            if "success_rate" in cols:
                label = group if j == 0 else None
                ax.plot(cols["env_steps"], cols["success_rate"], color=f"C{i % 10}", label=label)
    return finish(fig, ax, path, "env steps", "success rate", title)


def speed_table(cells: list[list[str]], path: str) -> str:
    """The speed table as a figure: ``cells`` as ``experiments.plots.report.speed_cells`` makes
    them, one row per method, under the ``SPEED_COLUMNS`` labels."""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.4 * max(len(cells), 1)))
    ax.axis("off")
    table = ax.table(
        cellText=cells or [["-"] * 5],
        colLabels=["run"] + [label for _, label in SPEED_COLUMNS],
        loc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    return save(fig, path)
