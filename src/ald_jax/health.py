"""Early warning of a collapsed policy (issue 41).

V-MPO has no entropy term: before the first reward arrives nothing pulls a policy back once it
sharpens on a behaviour that reaches no goal, and such a run burns its whole budget at 0%
success. ``CollapseWatch`` looks at each metric row: when the learner's policy entropy
(``entropy/learner``, nats, on its batch) is below ``fraction`` of the uniform policy's
(``log num_actions``) while the training success is still below ``success_floor``, the row gets
``warn/entropy_collapse = 1`` (else 0) and the console gets one line, the first time only. The
run goes on: it is a warning, not a stop rule.
"""

from __future__ import annotations

import math

COLUMN = "warn/entropy_collapse"


class CollapseWatch:
    """Marks rows of a collapsed policy; ``fraction = 0`` turns it off (no column)."""

    def __init__(self, num_actions: int, fraction: float, success_floor: float, log=print):
        self.threshold = fraction * math.log(max(num_actions, 1))
        self.on = fraction > 0 and num_actions > 1
        self.fraction = fraction
        self.success_floor = success_floor
        self.log = log
        self.warned = False

    def check(self, row: dict, where: str = "") -> dict:
        """``row`` with the warning column added (in place, and returned)."""
        if not self.on or "entropy/learner" not in row:
            return row
        entropy = row["entropy/learner"]
        success = row.get("success_rate", 0.0)
        collapsed = entropy < self.threshold and success < self.success_floor
        row[COLUMN] = float(collapsed)
        if collapsed and not self.warned:
            self.warned = True
            self.log(
                f"[ald-jax] warning{where}: the learner's policy entropy is {entropy:.3f} nats, "
                f"below {self.threshold:.3f} ({self.fraction:g} of the uniform policy's "
                f"{self.threshold / self.fraction:.3f}), while "
                f"training success is {success:.3f} (< {self.success_floor:g}) at "
                f"{row.get('env_steps', 0):.0f} env steps: the policy may have collapsed before "
                f"its first rewards (column {COLUMN}; entropy_warn_fraction=0 turns this off)"
            )
        return row
