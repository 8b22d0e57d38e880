"""Config section of the workflows: iterative training (workflows/iterate.py). scripts/config.py
assembles it with the other sections."""

import dataclasses

from common.settings import setting


@dataclasses.dataclass
class IterateConfig:
    """Iterative training (paper, section 6): rounds of real episodes with the current C, M fine-tuned on them, C retrained in the dream."""

    episodes_per_round: int = setting(
        1000,
        "real episodes collected with the current controller in each round (the paper gives no number)",
        "episodes",
        "paper, section 6; this project's choice",
    )
    action_noise: float = setting(
        0.1,
        "std of the Gaussian noise added to C's output before the env's action mapping (then clipped to [-1, 1]); "
        "exploration, so M sees what follows actions C does not take",
        "action units",
        "paper, section 6; this project's choice",
    )
    rnn_epochs: int = setting(
        5, "epochs of M's fine-tune per round, from the previous round's weights", "epochs", "paper, section 6; this project's choice", locked=False
    )
    controller_generations: int = setting(
        50, "CMA-ES generations per round, from the previous round's distribution mean", "generations", "paper, section 6; this project's choice", locked=False
    )
    eval_episodes: int = setting(
        100,
        "real episodes scoring each round's mean, twice: on evaluate's seeds (evaluate.seed + k) and on the validation seeds (2^29 + k) "
        "the best round is named by",
        "episodes",
        "paper, section 4.4",
        locked=False,
    )
    fidelity_episodes: int = setting(
        50,
        "episodes per policy and side of each round's fidelity report (dream/game length ratios in rounds.json; a report already "
        "in the round folder keeps its own count); 0 turns it off",
        "episodes",
        "this project's choice",
        locked=False,
    )
    seed: int = setting(0, "seed of the collection episodes (their env seeds and action noise)", "seed")
