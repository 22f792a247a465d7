"""ald-jax: Actor-Learner Distillation (Parisotto & Salakhutdinov, ICLR 2021) in JAX."""

__version__ = "0.1.0"
