"""Config section for M, the MDN-RNN, and the dream built from it."""

import dataclasses

from common.settings import setting


@dataclasses.dataclass
class RnnConfig:
    hidden_size: int = setting(256, "LSTM units (CarRacing 256, Doom 512)", "units", "paper, appendix A.2")
    num_mixtures: int = setting(5, "Gaussians per z dimension", "components", "paper, appendix A.2")
    restart_input: bool = setting(False, "feed the episode-restart flag as an input (Doom)", "", "authors' code (Doom)")
    predict_done: bool = setting(False, "add a done logit head (Doom)", "", "paper, section 4.4")
    done_weight: float = setting(10.0, "weight of positive examples in the done loss", "1", "authors' code (Doom)")
    predict_reward: bool = setting(False, "add a reward head (for dream training of CarRacing)", "")
    sequence_length: int = setting(999, "steps per training window (CarRacing 999, Doom 500)", "steps", "authors' code")
    batch_size: int = setting(100, "windows per training batch: the stream is cut into this many rows (rnn/data.py)", "windows", "authors' code")
    learning_rate: float = setting(1e-3, "Adam learning rate at step 0", "1", "authors' code")
    learning_rate_decay: float = setting(
        1.0, "lr = (lr_0 - min_lr) * decay^step + min_lr; 1 keeps lr_0 (CarRacing), Doom 0.99999", "1 per step", "authors' code (Doom)"
    )
    min_learning_rate: float = setting(1e-5, "the value the decayed learning rate tends to", "1", "authors' code (Doom)")
    gradient_clip: float = setting(1.0, "gradients clipped by value to [-clip, clip]", "1", "authors' code")
    epochs: int = setting(
        40,
        "passes over every step of every training episode (CarRacing 40: the paper's 4000 batches of 100 x 999 steps over 10,000 x 1,000 steps; "
        "Doom 20, paper; the authors' Doom code ran ~400)",
        "epochs",
        "paper",
        locked=False,
    )
    validation_fraction: float = setting(0.02, "share of series episodes held out of training, evaluated at each epoch end", "1", "")
    log_every: int = setting(10, "training steps per metrics line (jsonl, TensorBoard, terminal)", "steps", locked=False)
    checkpoint_every_minutes: float = setting(5.0, "time between training checkpoints", "minutes", locked=False)
    seed: int = setting(0, "seed for initial weights, window sampling and z resampling", "seed")
