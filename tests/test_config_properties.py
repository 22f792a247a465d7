"""Property-based checks of the config (issue 39): whatever a user types as overrides (wrong
types, out of range, empty, unknown keys, very long strings, unicode, NaN/inf, negative zero,
huge integers, duplicated keys), loading it either validates or raises ``ConfigError`` whose one
line names the field; never another exception. Pure Python: nothing is compiled.

The examples are derandomized (the same ones every run, so that ``make test`` cannot fail by
chance); ``HYPOTHESIS_PROFILE=explore`` draws new ones, ten times as many.
"""

import math
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ald_jax.config import (
    _CHOICES,
    Config,
    ConfigError,
    _field_type,
    apply_overrides,
    field_names,
    show,
    validate,
)
from ald_jax.run import load_config
from experiments import EXPERIMENTS

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,  # the first envpool / gymnax import takes seconds
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
SCALE = 10 if PROFILE == "explore" else 1  # examples: 1,300 in make test, 13,000 exploring

FIELDS = field_names()
BASE = validate(Config())
CHOICE_VALUES = sorted({v for values in _CHOICES.values() for v in values})
AWKWARD = [
    "", " ", "\t", "nan", "-nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e-400",
    "-0", "-0.0", "0.0", "+0", "0x10", "0b1", "1_000", "1__0", "1e3", "1.5e2", "3.0", " 7 ",
    "9007199254740993", "-9223372036854775809", "18446744073709551617", "4294967301",
    "2147483648", "9" * 5000, "true", "True", "yes", "off", "0", "1", "2", "None", "[]", "{}",
    "١٢", "²", "５", "٣.٥", "ⅷ", "cpu", "cpu:0", "cpu:0\n", "cuda:٠", "cuda:0,cuda:0",
    "cuda:0,cuda:1", "0", "3", "²", "auto", "runs/x", "a\x00b", "\udcff", "é", "🙂" * 50,
    "envpool:", "envpool:CartPole-v1", "envpool:Nope-v0", "gymnax:", "gymnax:CartPole-v1",
    "gymnax:Pendulum-v1", "gymnax:nope", "xminigrid:", "xminigrid:MiniGrid-Empty-5x5",
    "imaze5", "imaze9", "imaze7", "image", "{seed}", "../../etc", "=", "==", "a=b",
]  # fmt: skip


def _numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-(10**30), 10**30).map(str),
        st.integers(-5, 5000).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.floats(-2, 2).map(lambda x: f"{x:g}"),
    )


def _long_text() -> st.SearchStrategy[str]:
    return st.builds(lambda c, n: c * n, st.characters(), st.integers(1000, 20000))


VALUE_TEXT = st.one_of(
    st.sampled_from(AWKWARD),
    st.sampled_from(CHOICE_VALUES),
    _numbers(),
    st.text(max_size=20),
    _long_text(),
)
KEY = st.one_of(
    st.sampled_from(FIELDS),
    st.sampled_from(FIELDS).map(lambda k: k.upper()),
    st.sampled_from(FIELDS).map(lambda k: f" {k} "),
    st.text(max_size=12),
    _long_text(),
)
OVERRIDE = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", KEY, VALUE_TEXT),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(FIELDS), VALUE_TEXT),
    st.text(max_size=20),  # often without '='
)
PY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.just(10**5000),  # longer than Python will write out (4,300 digits)
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(-0.0),
    st.text(max_size=20),
    st.sampled_from(AWKWARD + CHOICE_VALUES),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _keys_of(overrides) -> list[str]:
    if isinstance(overrides, dict):
        return [k if isinstance(k, str) else show(k) for k in overrides]
    return [o.partition("=")[0].strip() for o in overrides]


def _check_refusal(err: ConfigError, overrides) -> None:
    """One line, naming a field (or key, or override) that the user gave."""
    event("refused")
    message = str(err)
    assert message and "\n" not in message and "\r" not in message, message[:300]
    given_items = list(overrides) if not isinstance(overrides, dict) else []
    shown = [repr(n)[:40] for n in _keys_of(overrides)] + [n[:40] for n in _keys_of(overrides)]
    shown += [repr(o)[:40] for o in given_items]
    assert any(s and s in message for s in shown), (message[:300], shown)


def _check_accepted(cfg: Config) -> None:
    """What a validated config holds: each field of its type; finite numbers; text that prints."""
    event("accepted")
    for name in FIELDS:
        value, t = getattr(cfg, name), _field_type(name)
        assert type(value) is t or (t is float and type(value) is int), (name, value)
        if t is float:
            assert math.isfinite(value), (name, value)
        if t is int:
            assert abs(value) < 2**63, (name, value)
        if t is str:
            value.encode("utf-8")  # printable in a log line and a path
            assert "\x00" not in value


@given(st.lists(OVERRIDE, max_size=4))
@settings(max_examples=500 * SCALE)
def test_command_line_overrides_validate_or_name_the_field(overrides):
    try:
        cfg = validate(apply_overrides(BASE, overrides))
    except ConfigError as err:
        _check_refusal(err, overrides)
        return
    _check_accepted(cfg)


@given(st.sampled_from(FIELDS), VALUE_TEXT)
@settings(max_examples=300 * SCALE)
def test_one_override_is_refused_by_its_name_or_kept_exactly(name, text):
    try:
        cfg = validate(apply_overrides(BASE, [f"{name}={text}"]))
    except ConfigError as err:
        _check_refusal(err, [f"{name}={text}"])
        return
    _check_accepted(cfg)
    value, t = getattr(cfg, name), _field_type(name)
    if t is int and text.strip().lstrip("+-").isdecimal():
        assert value == int(text), (name, text, value)  # no rounding through a float
    if t is str:
        assert value == text


@given(st.dictionaries(KEY | st.integers() | st.none(), PY_VALUE, max_size=3))
@settings(max_examples=300 * SCALE)
def test_typed_overrides_validate_or_name_the_field(overrides):
    try:
        cfg = validate(apply_overrides(BASE, overrides))
    except ConfigError as err:
        _check_refusal(err, overrides)
        return
    _check_accepted(cfg)


@given(st.sampled_from(EXPERIMENTS), st.sampled_from(FIELDS), VALUE_TEXT, VALUE_TEXT)
@settings(max_examples=200 * SCALE)
def test_load_config_with_a_duplicated_key_keeps_the_last(exp, name, first, last):
    overrides = [f"{name}={first}", f"{name}={last}"]
    try:
        cfg = load_config(exp, overrides)
    except ConfigError as err:
        _check_refusal(err, overrides)
        return
    _check_accepted(cfg)
    alone = load_config(exp, [f"{name}={last}"])  # the last one wins, as if alone
    assert getattr(cfg, name) == getattr(alone, name) or name == "profile"


# A sample at the command line: exit 2 and one line on stderr, no traceback, before any JAX.
CLI_CASES = [
    ["seed=-1"],
    ["batch_size=1e400"],
    ["learning_rate=nan"],
    ["dprl=inf"],
    ["seed=4294967301"],
    ["distill_devices=²"],
    ["actor_device=cpu:0\n"],
    ["exp=\udcff"],
    ["ßeed=3"],
    ["nonsense"],
    ["seed=1", "seed=x"],
    ["on_checkpoint_failure=ignore"],
    ["x" * 5000 + "=1"],
]


@pytest.mark.parametrize("overrides", CLI_CASES, ids=lambda o: repr(o)[:30])
def test_bad_overrides_at_the_command_line_exit_2_with_one_line(overrides):
    cmd = [sys.executable, "-m", "ald_jax.run", "--exp", "debug", "--no-progress", *overrides]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                          errors="replace")  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ald-jax: bad configuration: "), lines[:5]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_refusal_at_the_command_line_imports_no_jax():
    """Bad input is refused before JAX is even imported (0.1 s, not a second)."""
    code = (
        "import sys; from ald_jax.run import main; rc = main(['--exp', 'debug', 'seed=-1']); "
        "print(rc, 'jax' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr
