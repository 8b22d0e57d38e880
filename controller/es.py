"""CMA-ES over the controller's parameters (paper, section 4.3; Hansen 2016), via pycma.

The paper maximises the mean return of a candidate over its rollouts; the
authors' code also subtracts a weight decay, so large weights are penalised:

    fitness(x) = mean return(x) - weight_decay * mean(x^2)

pycma minimises, so its objective is -fitness: the sign is flipped here, in
`tell`, and nowhere else. x0 = 0 (or a given mean), sigma0 = controller.sigma_init.

The sampler draws from a private NumPy RandomState seeded with
controller.seed and stored inside the pickled pycma object, so the saved
state holds everything: a run resumed from it continues exactly as an
uninterrupted one (nothing else in the process can disturb its random stream).
"""

import pickle
from pathlib import Path

import cma
import numpy as np

from common.errors import ArtifactError
from common.files import atomic_path

STATE_FORMAT = 1


class EvolutionStrategy:
    """Ask/tell CMA-ES maximising fitness = mean return - weight_decay * mean(params^2)."""

    def __init__(self, num_params: int, sigma_init: float, population_size: int, weight_decay: float, seed: int, x0: np.ndarray | None = None):
        """x0: the initial distribution mean (N,), zeros if None (iterative training starts from the previous round's mean)."""
        self.num_params = num_params
        self.weight_decay = weight_decay
        random_state = np.random.RandomState(seed)  # private: see the module docstring
        options = {"popsize": population_size, "randn": random_state.randn, "verbose": -9}
        x0 = np.zeros(num_params) if x0 is None else np.asarray(x0, dtype=np.float64)
        if x0.shape != (num_params,):
            raise ValueError(f"x0 has shape {x0.shape}, expected ({num_params},)")
        self.strategy = cma.CMAEvolutionStrategy(x0, sigma_init, options)
        self.generation = 0  # generations told so far
        self.best_params: np.ndarray | None = None  # best candidate ever told, by fitness
        self.best_fitness = -np.inf
        self.best_generation = -1
        self.records: list[dict] = []  # one metrics record per finished generation
        self.selected: dict | None = None  # the mean with the best validation score so far (see select)
        self._pending: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        """The distribution mean, float32 (N,)."""
        return np.asarray(self.strategy.mean, dtype=np.float32)

    @property
    def sigma(self) -> float:
        return float(self.strategy.sigma)

    def ask(self) -> np.ndarray:
        """This generation's candidates, float32 (P, N). Asking again before tell returns the same ones."""
        if self._pending is None:
            self._pending = np.asarray(self.strategy.ask(), dtype=np.float64)
        return self._pending.astype(np.float32)

    def fitness(self, mean_returns: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """fitness = mean return - weight_decay * mean(params^2), per candidate (higher is better)."""
        return np.asarray(mean_returns, dtype=np.float64) - self.weight_decay * np.mean(np.square(candidates, dtype=np.float64), axis=1)

    def tell(self, mean_returns: np.ndarray, episode_seeds: np.ndarray | None = None) -> np.ndarray:
        """Report each candidate's mean return (P,); returns the fitness (P,) it was ranked by.

        episode_seeds (P, R): the seeds of each candidate's episodes, named if its return is
        not finite (CMA-ES cannot rank it; the generation is then not told, and can be rerun).
        """
        if self._pending is None:
            raise RuntimeError("tell() without a pending ask()")
        mean_returns = np.asarray(mean_returns, dtype=np.float64)
        if mean_returns.shape != (len(self._pending),):
            raise ValueError(f"expected {len(self._pending)} mean returns, got shape {mean_returns.shape}")
        bad = np.flatnonzero(~np.isfinite(mean_returns))
        if len(bad):
            seeds = "" if episode_seeds is None else f" (episode seeds {np.asarray(episode_seeds)[bad[0]].tolist()})"
            raise ValueError(
                f"generation {self.generation}: candidate {bad[0]} of {len(mean_returns)} has a non-finite mean return "
                f"{mean_returns[bad[0]]}{seeds}; {len(bad)} candidate(s) in all: {bad.tolist()}. CMA-ES cannot rank it. "
                f"A NaN or infinite return comes from M (NaN weights or reward head) or the environment: check those, "
                f"then rerun to redo this generation"
            )
        fitness = self.fitness(mean_returns, self._pending)
        # pycma minimises: the one and only sign flip.
        self.strategy.tell(list(self._pending), list(-fitness))
        best = int(np.argmax(fitness))
        if fitness[best] > self.best_fitness:
            self.best_fitness = float(fitness[best])
            self.best_params = self._pending[best].astype(np.float32)
            self.best_generation = self.generation
        self._pending = None
        self.generation += 1
        return fitness

    def select(self, generation: int, score: float, score_std: float, episodes: int) -> bool:
        """Keep the current mean as the selected one if its validation score (the mean return over
        the fixed validation episodes) beats the kept one's; whether it did. generation: the one
        just told, whose update made this mean."""
        if self.selected is not None and score <= self.selected["score"]:
            return False
        self.selected = {"params": self.mean, "generation": generation, "score": float(score), "score_std": float(score_std), "episodes": int(episodes)}
        return True

    # --- state -------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the full state (pycma object with its random stream, counters, best, records)
        atomically. A pickle, read back only from the project's own run directory."""
        if self._pending is not None:
            raise RuntimeError("save() between ask() and tell(): the generation is not finished")
        state = {"format": STATE_FORMAT, **{key: value for key, value in self.__dict__.items() if key != "_pending"}}
        with atomic_path(path) as temporary:
            temporary.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    @classmethod
    def load(cls, path: str | Path, num_params: int) -> "EvolutionStrategy":
        """Read a state written by save(); ArtifactError naming the file if unusable or for another size."""
        path = Path(path)
        hint = "delete it (or rerun with --force) to start training over"
        try:
            state = pickle.loads(path.read_bytes())
        except Exception as error:
            raise ArtifactError(f"{path}: unreadable CMA-ES state ({type(error).__name__}: {error}); {hint}") from error
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ArtifactError(f"{path}: not a CMA-ES state of format {STATE_FORMAT}; {hint}")
        if state["num_params"] != num_params:
            raise ArtifactError(f"{path}: CMA-ES state for {state['num_params']} parameters, the controller has {num_params}; {hint}")
        strategy = cls.__new__(cls)
        state.pop("format")
        state.setdefault("selected", None)  # a state saved before validation selection existed
        strategy.__dict__.update(state)
        strategy._pending = None
        return strategy
