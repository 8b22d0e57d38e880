"""Training C with CMA-ES (paper, sections 4.3 and 5; authors' code for the weight decay and the
periodic evaluation of the distribution mean).

Each generation: rank 0 asks CMA-ES for P candidates; the P x R (candidate,
rollout) jobs are split across the MPI ranks; a candidate's fitness is the
mean return of its R rollouts (minus the weight decay, in controller/es.py);
rank 0 tells CMA-ES and saves everything, so a rerun resumes from the last
finished generation and continues exactly as an uninterrupted run.

Two modes score a job:
- real  (CarRacing, paper section 4): an episode of the real environment with
  V + M + C (controller/agent.py), envs_per_worker environments in lockstep;
- dream (Doom, paper section 5): an episode inside M at temperature tau
  (rnn/dream.py BatchedDream), the rank's whole share as one batch.

Seeds: training episode (generation g, candidate i, rollout r) uses a hash of
(controller.seed, g, i, r) in [2^31, 2^32); evaluation seeds (evaluate.seed + k)
stay below 2^31, so the two never meet.

Writes DIR/controller/: es_state.pkl, best.npz, mean.npz, metrics.jsonl,
curve.png, tensorboard/.
"""

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.errors import ArtifactError
from common.files import atomic_path, write_jsonl
from controller import linear
from controller.es import EvolutionStrategy
from controller.parallel import Workers

STATE_NAME = "es_state.pkl"
BEST_NAME = "best.npz"
MEAN_NAME = "mean.npz"
METRICS_NAME = "metrics.jsonl"
CURVE_NAME = "curve.png"

TRAINING_SEED_BASE = 2**31  # training seeds lie in [2^31, 2^32); evaluation seeds below 2^31
MEAN_EVALUATION_TAG = 2**31  # candidate slot used for the periodic scoring of the mean
# controller fields a resumed run must share with the saved CMA-ES state
RESUME_FIELDS = ("mode", "population_size", "rollouts_per_candidate", "sigma_init", "weight_decay", "seed", "temperature", "sample_z", "max_dream_steps")


def episode_seed(seed: int, generation: int, candidate: int, rollout: int) -> int:
    """The seed of one training episode: a pure function of its coordinates, in [2^31, 2^32)."""
    value = np.random.SeedSequence([seed, generation, candidate, rollout]).generate_state(1, np.uint32)[0]
    return TRAINING_SEED_BASE + int(value) % TRAINING_SEED_BASE


def generation_seeds(seed: int, generation: int, population_size: int, rollouts: int) -> np.ndarray:
    """(P * R,) int64: job j = candidate j // R, rollout j % R."""
    return np.array([episode_seed(seed, generation, job // rollouts, job % rollouts) for job in range(population_size * rollouts)], np.int64)


def mean_evaluation_seeds(seed: int, generation: int, count: int) -> np.ndarray:
    return np.array([episode_seed(seed, generation, MEAN_EVALUATION_TAG, index) for index in range(count)], np.int64)


# --- scorers: (weights (J, F, A), biases (J, A) or None, seeds (J,)) -> returns (J,) -------------


def dream_scorer(config, run_dir: Path) -> Callable:
    """Score jobs inside M's dream at temperature tau (the whole block as one batch)."""
    from rnn.dream import BatchedDream
    from rnn.store import load_mdn_rnn
    from vae.series import read_initial_z

    model = load_mdn_rnn(run_dir / "rnn", config)
    initial_mu, initial_logvar = read_initial_z(run_dir / "series", config.vae.z_size)
    dream = BatchedDream(model, initial_mu, initial_logvar, config.controller.temperature, config.controller.max_dream_steps, config.controller.use_cell_state)
    return lambda weights, biases, seeds: dream.run(weights, biases, seeds)


def load_agent(config, run_dir: Path):
    """V's encoder, M and the batched agent, from the run directory."""
    from controller.agent import Agent
    from rnn.store import load_mdn_rnn
    from vae.store import load_part

    encoder = load_part(run_dir / "vae", "encoder", config.vae.z_size)
    model = load_mdn_rnn(run_dir / "rnn", config)
    return Agent(encoder, model, linear.ControllerShape.from_config(config), sample_z=config.controller.sample_z)


def real_scorer(config, run_dir: Path) -> Callable:
    """Score jobs as real-environment episodes, envs_per_worker in lockstep."""
    from env.batch import BatchEnv

    agent = load_agent(config, run_dir)
    batch_env = None  # one per worker: rows beyond a call's jobs stay idle, so it serves every share size

    def score(weights, biases, seeds):
        nonlocal batch_env
        if len(seeds) == 0:
            return np.zeros(0, np.float32)
        wanted = min(config.controller.envs_per_worker, len(seeds))
        if batch_env is None or batch_env.num_envs < wanted:
            if batch_env is not None:
                batch_env.close()
            batch_env = BatchEnv(config.env, wanted)
        return agent.run_episodes(batch_env, weights, biases, seeds)["returns"]

    return score


def make_scorer(config, run_dir: Path) -> Callable:
    return dream_scorer(config, run_dir) if config.controller.mode == "dream" else real_scorer(config, run_dir)


# --- the training loop --------------------------------------------------------------------------


def _settings(config) -> dict:
    return {name: getattr(config.controller, name) for name in RESUME_FIELDS}


def _load_or_start(config, shape: linear.ControllerShape, controller_dir: Path) -> EvolutionStrategy:
    path = controller_dir / STATE_NAME
    settings = _settings(config)
    if not path.exists():
        strategy = EvolutionStrategy(
            shape.num_params, config.controller.sigma_init, config.controller.population_size, config.controller.weight_decay, config.controller.seed
        )
        strategy.settings = settings
        strategy.shape = shape
        return strategy
    strategy = EvolutionStrategy.load(path, shape.num_params)
    if getattr(strategy, "shape", None) != shape:
        raise ArtifactError(f"{path}: saved for {strategy.shape.describe()}, the config wants {shape.describe()}; rerun with --force to start over")
    changed = [f"controller.{key}={settings[key]!r} (saved {strategy.settings.get(key)!r})" for key in settings if strategy.settings.get(key) != settings[key]]
    if changed:
        raise ArtifactError(
            f"{path}: CMA-ES was started with other settings: {', '.join(changed)}. Resume with the saved values, "
            f"or rerun `python -m scripts.train_controller --run-dir {controller_dir.parent} --force` to start over."
        )
    return strategy


def _write_outputs(strategy: EvolutionStrategy, shape: linear.ControllerShape, controller_dir: Path, title: str) -> None:
    """Everything derived from the CMA-ES state (which holds every generation's record): mean.npz,
    best.npz, metrics.jsonl, curve.png. Written after the state every generation and again when
    a run resumes, so a kill between the state and these files loses nothing."""
    if strategy.generation == 0:
        return
    last = strategy.records[-1]
    linear.save_params(controller_dir / MEAN_NAME, strategy.mean, shape, generation=strategy.generation - 1, sigma=strategy.sigma)
    linear.save_params(
        controller_dir / BEST_NAME,
        strategy.best_params,
        shape,
        generation=strategy.best_generation,
        fitness=strategy.best_fitness,
        last_generation=last["generation"],
    )
    write_jsonl(controller_dir / METRICS_NAME, strategy.records)
    plot_curve(strategy.records, controller_dir / CURVE_NAME, title)


def plot_curve(records: list[dict], path: Path, title: str) -> None:
    """curve.png: fitness per generation (mean, best, worst) and the periodic mean scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    generations = [record["generation"] for record in records]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    axes.fill_between(generations, [r["fitness_worst"] for r in records], [r["fitness_best"] for r in records], alpha=0.2, label="worst..best candidate")
    axes.plot(generations, [r["fitness_mean"] for r in records], marker=".", label="population mean fitness")
    evaluated = [r for r in records if "mean_params_return" in r]
    if evaluated:
        axes.errorbar(
            [r["generation"] for r in evaluated],
            [r["mean_params_return"] for r in evaluated],
            yerr=[r["mean_params_return_std"] for r in evaluated],
            fmt="o",
            capsize=3,
            label="return of the distribution mean (eval rollouts, ± std)",
        )
    axes.set_xlabel("generation")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel("fitness = mean return - weight decay;  return")
    axes.set_title(title)
    axes.legend(loc="best")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)


def train_controller(
    config, run_dir: Path, workers: Workers, scorer: Callable | None = None, log: Callable[[str], None] = print, progress: bool = True
) -> dict:
    """Run CMA-ES from the last finished generation to controller.num_generations.

    Every rank calls this; rank 0 owns CMA-ES and the files. scorer: see make_scorer (built
    on every rank if not given). Returns a summary on rank 0 ({} elsewhere).
    """
    run_dir = Path(run_dir)
    controller_dir = run_dir / "controller"
    settings = config.controller
    shape = linear.ControllerShape.from_config(config)
    population_size, rollouts = settings.population_size, settings.rollouts_per_candidate
    root = workers.is_root

    title = f"{config.env.name}: CMA-ES ({settings.mode})"

    def start():
        if not root:
            return None
        strategy = _load_or_start(config, shape, controller_dir)
        _write_outputs(strategy, shape, controller_dir, title)  # repairs them after a kill
        return strategy

    strategy = workers.guarded(start)
    first_generation = workers.broadcast(strategy.generation if root else None)
    if scorer is None:
        scorer = workers.guarded(lambda: make_scorer(config, run_dir))
    if root and first_generation >= settings.num_generations:
        log(f"train_controller: all {settings.num_generations} generations are done; raise controller.num_generations (--set) to continue")
    elif root:
        mode = f"{settings.mode} (tau {settings.temperature})" if settings.mode == "dream" else settings.mode
        log(
            f"train_controller: {shape.describe()}; CMA-ES population {population_size} x {rollouts} rollouts, mode {mode}, "
            f"{workers.size} rank(s); generations {first_generation}..{settings.num_generations - 1}"
        )
    writer = None
    bar = None
    if root and progress and first_generation < settings.num_generations:
        from tqdm import tqdm

        bar = tqdm(total=settings.num_generations, initial=first_generation, desc="generations", unit="gen", leave=False)

    def one_generation(generation: int) -> None:
        started = time.perf_counter()
        candidates = workers.broadcast(workers.guarded(lambda: strategy.ask() if root else None))
        weights, biases = linear.stack(candidates, shape)
        seeds = generation_seeds(settings.seed, generation, population_size, rollouts)
        candidate_of_job = np.arange(population_size * rollouts) // rollouts

        def score_block(block: slice) -> np.ndarray:
            rows = candidate_of_job[block]
            return scorer(weights[rows], biases[rows] if biases is not None else None, seeds[block])

        returns = workers.map_jobs(score_block, population_size * rollouts).astype(np.float64)
        mean_returns = returns.reshape(population_size, rollouts).mean(axis=1)

        def tell():
            if not root:
                return None
            fitness = strategy.tell(mean_returns)
            return {
                "generation": generation,
                "fitness_mean": float(fitness.mean()),
                "fitness_best": float(fitness.max()),
                "fitness_worst": float(fitness.min()),
                "fitness_std": float(fitness.std()),
                "return_mean": float(mean_returns.mean()),
                "return_best": float(mean_returns.max()),
                "best_ever_fitness": float(strategy.best_fitness),
                "sigma": strategy.sigma,
            }

        record = workers.guarded(tell)
        if settings.eval_every > 0 and ((generation + 1) % settings.eval_every == 0 or generation + 1 == settings.num_generations):
            # the authors' periodic check: the distribution mean on more rollouts
            mean_params = workers.broadcast(strategy.mean if root else None)
            mean_weights, mean_biases = linear.stack(mean_params[None], shape)
            eval_seeds = mean_evaluation_seeds(settings.seed, generation, settings.eval_rollouts)

            def score_mean(block: slice) -> np.ndarray:
                count = block.stop - block.start
                return scorer(
                    np.repeat(mean_weights, count, axis=0), np.repeat(mean_biases, count, axis=0) if mean_biases is not None else None, eval_seeds[block]
                )

            mean_scores = workers.map_jobs(score_mean, settings.eval_rollouts)
            if root:
                record["mean_params_return"] = float(mean_scores.mean())
                record["mean_params_return_std"] = float(mean_scores.std())

        def save():
            nonlocal writer
            if not root:
                return None
            record["seconds"] = time.perf_counter() - started
            strategy.records.append(record)
            strategy.save(controller_dir / STATE_NAME)  # first: it is what a resume reads
            _write_outputs(strategy, shape, controller_dir, title)
            writer = writer or _summary_writer(controller_dir)
            _write_summaries(writer, record)
            line = (
                f"generation {generation}: fitness mean {record['fitness_mean']:.2f} best {record['fitness_best']:.2f} "
                f"worst {record['fitness_worst']:.2f}, sigma {record['sigma']:.4f}, {record['seconds']:.1f} s"
            )
            if "mean_params_return" in record:
                line += f"; mean params {record['mean_params_return']:.2f} ± {record['mean_params_return_std']:.2f} over {settings.eval_rollouts} episodes"
            (bar.write if bar is not None else log)(line)
            if bar is not None:
                bar.update(1)
            return None

        workers.guarded(save)

    for generation in range(first_generation, settings.num_generations):
        one_generation(generation)
    if bar is not None:
        bar.close()
    if not root:
        return {}
    last = strategy.records[-1] if strategy.records else {}
    return {
        "generations": strategy.generation,
        "best_fitness": strategy.best_fitness,
        "best_generation": strategy.best_generation,
        "last_fitness_mean": last.get("fitness_mean"),
        "sigma": strategy.sigma,
        "ranks": workers.size,
    }


def _summary_writer(controller_dir: Path):
    import tensorflow as tf

    return tf.summary.create_file_writer(str(controller_dir / "tensorboard"))


def _write_summaries(writer, record: dict) -> None:
    from common.summaries import write_scalars

    keys = ("fitness_mean", "fitness_best", "fitness_worst", "return_mean", "sigma", "mean_params_return")
    write_scalars(writer, {key: record[key] for key in keys if key in record}, step=record["generation"])
