"""9x9 I-Maze (the paper's §5.1, Fig. 4): LSTM-32 actor, 2-layer GTrXL learner."""

from experiments.common import paper_task


def get_config():
    return paper_task(
        exp="imaze9", env="imaze9", total_env_steps=10_000_000, lstm_hidden=32, gtrxl_layers=2
    )
