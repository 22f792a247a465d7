"""Meta-Fetch with 3 objects (the paper's §5.2, Fig. 3): LSTM-128 actor, 4-layer GTrXL."""

from experiments.common import paper_task


def get_config():
    return paper_task(
        exp="metafetch3",
        env="metafetch3",
        total_env_steps=20_000_000,
        lstm_hidden=128,
        lstm_torso=128,
        gtrxl_layers=4,
    )
