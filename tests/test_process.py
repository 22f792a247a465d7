"""``with_fast_compile``: XLA:CPU's cheap-to-compile flags are added only where the user did not
set them and where this jaxlib knows them (an unknown XLA flag would abort the process)."""

from ald_jax import process


def test_a_users_own_setting_wins_and_nothing_is_asked_when_all_are_set(monkeypatch):
    monkeypatch.setattr(process, "_xla_accepts", lambda flags: 1 / 0)  # must not be asked
    mine = "--xla_backend_optimization_level=2 --xla_cpu_use_fusion_emitters=true"
    assert process.with_fast_compile(mine) == mine


def test_a_flag_this_jaxlib_does_not_know_is_left_out(monkeypatch):
    bogus = "--xla_cpu_no_such_flag_in_any_jaxlib=true"
    monkeypatch.setattr(
        process, "FAST_COMPILE_XLA_FLAGS", ("--xla_backend_optimization_level=0", bogus)
    )
    flags = process.with_fast_compile("--xla_force_host_platform_device_count=2")
    assert flags == "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"
