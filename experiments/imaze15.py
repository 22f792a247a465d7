"""15x15 I-Maze with central-corridor shaping (the paper's §5.1, Fig. 6): 4-layer GTrXL."""

from experiments.common import paper_task


def get_config():
    return paper_task(
        exp="imaze15", env="imaze15", total_env_steps=10_000_000, lstm_hidden=32, gtrxl_layers=4
    )
