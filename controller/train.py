"""Training C with CMA-ES (paper, sections 4.3 and 5; authors' code for the weight decay and the
periodic evaluation of the distribution mean).

Each generation: rank 0 asks CMA-ES for P candidates; the P x R (candidate,
rollout) jobs are split across the MPI ranks and scored; rank 0 tells CMA-ES
each candidate's mean return over its R rollouts (the fitness subtracts the
weight decay, controller/es.py) and saves everything, so a rerun resumes from
the last finished generation and continues exactly as an uninterrupted run.
That a rerun uses the settings the run started with is checked by the stage's
lock (DIR/controller/started.json, scripts/stage.py).

Ranking by skill rather than by luck (docs/design.md section 11):
- controller.shared_episodes: every candidate of a generation plays the same R seeds;
- the split-half rank correlation of each generation's returns measures how much of the
  ranking is noise (controller/noise.py); with controller.adaptive_rollouts it sets the next
  generation's R, a function of the saved records, so a resume continues with the same R;
- every controller.eval_every generations the distribution mean is scored on
  controller.eval_rollouts episodes: with controller.eval_set=validation always the same
  validation episodes, and the best-scoring mean so far is kept (selected.npz).

Two modes score a job:
- real  (CarRacing, paper section 4): an episode of the real environment with
  V + M + C (controller/agent.py), envs_per_worker environments in lockstep;
- dream (Doom, paper section 5): an episode inside M at temperature tau
  (controller/dream_scoring.py), the rank's whole share as one batch.

Seeds (controller/seeds.py, which maps every stage's range): training episode
(generation g, candidate i, rollout r) uses a hash of (controller.seed, g, i, r)
in [2^31, 2^32); validation episodes are 2^29 + k; evaluation seeds
(evaluate.seed + k) stay below 2^29, so none of them meet.

Writes DIR/controller/: es_state.pkl, best.npz, mean.npz, selected.npz
(controller.eval_set=validation), metrics.jsonl, curve.png, tensorboard/.
"""

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure
from tqdm import tqdm

from common.files import atomic_path, write_jsonl
from common.layout import CURVE_NAME, METRICS_NAME, TENSORBOARD_FOLDER, RunLayout
from common.layout import ES_STATE_NAME as STATE_NAME
from common.summaries import write_scalars
from controller.dream_scoring import DreamScorer
from controller.es import EvolutionStrategy
from controller.noise import next_rollouts, reliability, split_half_correlation
from controller.parallel import Workers
from controller.policy import controller_from_config
from controller.seeds import VALIDATION_SEED_BASE, generation_seeds, mean_score_seeds
from controller.store import BEST_NAME, MEAN_NAME, SELECTED_NAME, load_agent, save_params
from env.batch import BatchEnv
from rnn.calibration import done_rule as dream_done_rule
from rnn.store import load_mdn_rnn
from vae.series import read_initial_z

# --- scorers: (params (J, N), seeds (J,)) -> returns (J,), job j played by controller params[j] -----


def dream_scorer(config, run_dir: Path) -> Callable:
    """Score jobs inside M's dream at temperature tau, ended by controller.done_rule (the whole block as one batch)."""
    run = RunLayout(run_dir)
    model = load_mdn_rnn(run.rnn, config)
    initial_mu, initial_logvar = read_initial_z(run.series, config.vae.z_size)
    return DreamScorer.from_config(config, model, initial_mu, initial_logvar, dream_done_rule(config, run.rnn)).run


class RealScorer:
    """Score jobs as real-environment episodes, envs_per_worker in lockstep. One BatchEnv per
    worker, grown when a share needs more rows: rows beyond a call's jobs stay idle."""

    def __init__(self, config, run_dir: Path):
        self.agent = load_agent(config, run_dir)
        self.env_config = config.env
        self.envs_per_worker = config.controller.envs_per_worker
        self.batch_env = None

    def __call__(self, params, seeds) -> np.ndarray:
        if len(seeds) == 0:
            return np.zeros(0, np.float32)
        wanted = min(self.envs_per_worker, len(seeds))
        if self.batch_env is None or self.batch_env.num_envs < wanted:
            if self.batch_env is not None:
                self.batch_env.close()
            self.batch_env = BatchEnv(self.env_config, wanted)
        return self.agent.run_episodes(self.batch_env, params, seeds)["returns"]


def make_scorer(config, run_dir: Path) -> Callable:
    return dream_scorer(config, run_dir) if config.controller.mode == "dream" else RealScorer(config, run_dir)


def score_jobs(scorer: Callable, workers: Workers, candidates: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Returns (J,) of the J = len(seeds) jobs, job j candidate j // (J / P) (candidates (P, N)) with
    seed j, split across the ranks (each scores its block as one call)."""
    candidates = np.asarray(candidates, np.float32)
    candidate_of_job = np.arange(len(seeds)) // (len(seeds) // len(candidates))

    def score_block(block: slice) -> np.ndarray:
        return scorer(candidates[candidate_of_job[block]], seeds[block])

    return workers.map_jobs(score_block, len(seeds))


# --- rank 0: CMA-ES and the files ------------------------------------------------------------------


def on_root(workers: Workers, function: Callable):
    """Run function on rank 0 (None elsewhere); an error there is raised on every rank."""
    return workers.guarded(lambda: function() if workers.is_root else None)


class Rank0:
    """What rank 0 alone holds: the CMA-ES state, the output files, the log and the progress bar."""

    def __init__(self, config, controller_dir: Path, log: Callable[[str], None], progress: bool, initial_mean: np.ndarray | None = None):
        self.settings = config.controller
        self.controller = controller_from_config(config)
        self.controller_dir = controller_dir
        self.title = f"{config.env.name}: CMA-ES ({self.settings.mode})"
        self.return_cap = return_cap(config)
        self.log = log
        self.progress = progress
        state_path = controller_dir / STATE_NAME
        if state_path.exists():
            self.strategy = EvolutionStrategy.load(state_path, self.controller.num_params)
        else:
            settings = self.settings
            self.strategy = EvolutionStrategy(
                self.controller.num_params, settings.sigma_init, settings.population_size, settings.weight_decay, settings.seed, x0=initial_mean
            )
        self.write_outputs()  # repairs them after a kill between the state and them
        self.bar = None
        self.writer = None

    def start(self, num_ranks: int) -> None:
        settings, first = self.settings, self.strategy.generation
        if first >= settings.num_generations:
            self.log(f"train_controller: all {settings.num_generations} generations are done; raise controller.num_generations (--set) to continue")
            return
        mode = f"{settings.mode} (tau {settings.temperature})" if settings.mode == "dream" else settings.mode
        rollouts = f"{self.rollouts()} rollouts"
        if settings.adaptive_rollouts:
            rollouts += f" (adaptive, {settings.rollouts_per_candidate}..{settings.max_rollouts_per_candidate}, target reliability {settings.rank_reliability})"
        if settings.shared_episodes:
            rollouts += " shared by every candidate"
        scored = (
            f"; the mean scored every {settings.eval_every} generation(s) on {settings.eval_rollouts} {settings.eval_set} episodes"
            if settings.eval_every > 0
            else ""
        )
        self.log(
            f"train_controller: {self.controller.describe()}; CMA-ES population {settings.population_size} x {rollouts}, "
            f"mode {mode}, {num_ranks} rank(s); generations {first}..{settings.num_generations - 1}{scored}"
        )
        if self.progress:
            self.bar = tqdm(total=settings.num_generations, initial=first, desc="generations", unit="gen", leave=False)

    def ask(self) -> np.ndarray:
        return self.strategy.ask()

    def rollouts(self) -> int:
        """R of the next generation: rollouts_per_candidate, or (adaptive_rollouts) what the last
        generation's R and split-half rank correlation call for (controller/noise.py)."""
        settings = self.settings
        if not settings.adaptive_rollouts or not self.strategy.records:
            return settings.rollouts_per_candidate
        last = self.strategy.records[-1]
        return next_rollouts(
            last.get("rollouts", settings.rollouts_per_candidate),  # a record saved before R was logged
            last.get("rank_correlation"),
            settings.rollouts_per_candidate,
            settings.max_rollouts_per_candidate,
            settings.rank_reliability,
        )

    def tell(self, generation: int, job_returns: np.ndarray, seeds: np.ndarray, rollouts: int) -> dict:
        """Tell CMA-ES each candidate's mean return over its `rollouts` episodes; the generation's metrics record."""
        returns = np.asarray(job_returns, np.float64).reshape(-1, rollouts)
        mean_returns = returns.mean(axis=1)
        correlation = split_half_correlation(returns)
        fitness = self.strategy.tell(mean_returns, seeds.reshape(-1, rollouts))
        return {
            "generation": generation,
            "fitness_mean": float(fitness.mean()),
            "fitness_best": float(fitness.max()),
            "fitness_worst": float(fitness.min()),
            "fitness_std": float(fitness.std()),
            "return_mean": float(mean_returns.mean()),
            "return_best": float(mean_returns.max()),
            "best_ever_fitness": float(self.strategy.best_fitness),
            "sigma": self.strategy.sigma,
            "rollouts": rollouts,
            "rank_correlation": correlation,
            "rank_reliability": reliability(correlation),
        }

    def score_mean(self, record: dict, generation: int, scores: np.ndarray) -> None:
        """Add the distribution mean's score to the generation's record; on the validation set,
        keep the mean if it is the best-scoring so far."""
        record.update(mean_params_return=float(scores.mean()), mean_params_return_std=float(scores.std()))
        if self.settings.eval_set == "validation":
            self.strategy.select(generation, record["mean_params_return"], record["mean_params_return_std"], len(scores))
            record.update(selected_generation=self.strategy.selected["generation"], selected_return=self.strategy.selected["score"])

    def save(self, record: dict, seconds: float) -> None:
        """Keep the generation: the state first (what a resume reads), then the files derived from it."""
        record["seconds"] = seconds
        self.strategy.records.append(record)
        self.strategy.save(self.controller_dir / STATE_NAME)
        self.write_outputs()
        self.writer = self.writer or tf.summary.create_file_writer(str(self.controller_dir / TENSORBOARD_FOLDER))
        keys = (
            "fitness_mean",
            "fitness_best",
            "fitness_worst",
            "return_mean",
            "sigma",
            "rollouts",
            "rank_correlation",
            "rank_reliability",
            "mean_params_return",
            "selected_return",
        )
        write_scalars(self.writer, {key: record[key] for key in keys if record.get(key) is not None}, step=record["generation"])
        noise = f" (halves' rank correlation {record['rank_correlation']:.2f})" if record["rank_correlation"] is not None else ""
        line = (
            f"generation {record['generation']}: fitness mean {record['fitness_mean']:.2f} best {record['fitness_best']:.2f} "
            f"worst {record['fitness_worst']:.2f}, sigma {record['sigma']:.4f}, {record['rollouts']} rollouts{noise}, {seconds:.1f} s"
        )
        if "mean_params_return" in record:
            line += (
                f"; mean params {record['mean_params_return']:.2f} ± {record['mean_params_return_std']:.2f} "
                f"over {self.settings.eval_rollouts} {self.settings.eval_set} episodes"
            )
        if "selected_generation" in record:
            line += f" (selected: generation {record['selected_generation']}, {record['selected_return']:.2f})"
        (self.bar.write if self.bar is not None else self.log)(line)
        if self.bar is not None:
            self.bar.update(1)

    def write_outputs(self) -> None:
        """Everything derived from the CMA-ES state (which holds every generation's record): mean.npz,
        best.npz, metrics.jsonl, curve.png."""
        strategy = self.strategy
        if strategy.generation == 0:
            return
        save_params(self.controller_dir / MEAN_NAME, strategy.mean, self.controller, generation=strategy.generation - 1, sigma=strategy.sigma)
        save_params(
            self.controller_dir / BEST_NAME,
            strategy.best_params,
            self.controller,
            generation=strategy.best_generation,
            fitness=strategy.best_fitness,
            last_generation=strategy.records[-1]["generation"],
        )
        if strategy.selected is not None:
            selected = strategy.selected
            save_params(
                self.controller_dir / SELECTED_NAME,
                selected["params"],
                self.controller,
                generation=selected["generation"],
                validation_return=selected["score"],
                validation_return_std=selected["score_std"],
                validation_episodes=selected["episodes"],
                validation_first_seed=VALIDATION_SEED_BASE,
            )
        write_jsonl(self.controller_dir / METRICS_NAME, strategy.records)
        plot_curve(strategy.records, self.controller_dir / CURVE_NAME, self.title, self.settings.eval_set, self.return_cap)

    def finish(self, num_ranks: int) -> dict:
        if self.bar is not None:
            self.bar.close()
        strategy = self.strategy
        last = strategy.records[-1] if strategy.records else {}
        summary = {
            "generations": strategy.generation,
            "best_fitness": strategy.best_fitness,
            "best_generation": strategy.best_generation,
            "last_fitness_mean": last.get("fitness_mean"),
            "sigma": strategy.sigma,
            "ranks": num_ranks,
        }
        if strategy.selected is not None:
            summary.update(selected_generation=strategy.selected["generation"], selected_return=strategy.selected["score"])
        return summary


def plot_curve(records: list[dict], path: Path, title: str, eval_set: str = "fresh", cap: float | None = None) -> None:
    """curve.png: above, fitness per generation (mean, best, worst), the periodic scores of the mean
    and the selected one; below, the rollouts per candidate and the ranking's split-half reliability.
    cap: the most an episode can return (return_cap), to say when every candidate reached it."""
    generations = [record["generation"] for record in records]
    figure = Figure(figsize=(8, 7), layout="constrained")
    axes, noise_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    axes.fill_between(generations, [r["fitness_worst"] for r in records], [r["fitness_best"] for r in records], alpha=0.2, label="worst..best candidate")
    axes.plot(generations, [r["fitness_mean"] for r in records], marker=".", label="population mean fitness")
    evaluated = [r for r in records if "mean_params_return" in r]
    if evaluated:
        episodes = "validation episodes" if eval_set == "validation" else "fresh episodes"
        axes.errorbar(
            [r["generation"] for r in evaluated],
            [r["mean_params_return"] for r in evaluated],
            yerr=[r["mean_params_return_std"] for r in evaluated],
            fmt="o",
            capsize=3,
            label=f"return of the distribution mean ({episodes}, ± std)",
        )
    selected = [r for r in evaluated if r.get("selected_generation") == r["generation"]]
    if selected:
        last = selected[-1]
        axes.plot(last["generation"], last["mean_params_return"], marker="*", markersize=16, linestyle="none", color="gold", label="selected mean")
    axes.set_ylabel("fitness = mean return - weight decay;  return")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    noise_axes.step(generations, [r.get("rollouts", 0) for r in records], where="mid", color="tab:purple", label="R, rollouts per candidate")
    noise_axes.set_ylabel("R")
    noise_axes.set_ylim(bottom=0)
    noise_axes.set_xlabel("generation")
    noise_axes.xaxis.get_major_locator().set_params(integer=True)
    noise_axes.grid(alpha=0.3)
    reliability_axes = noise_axes.twinx()
    measured = [r for r in records if r.get("rank_reliability") is not None]
    reliability_axes.plot(
        [r["generation"] for r in measured],
        [r["rank_reliability"] for r in measured],
        marker=".",
        color="tab:green",
        label="the ranking's split-half reliability",
    )
    reliability_axes.set_ylim(0, 1)
    reliability_axes.set_ylabel("reliability")
    mark_return_cap(axes, records, cap)
    figure.legend(loc="outside lower center", ncol=2, fontsize="small")  # below the axes: a long run's curves fill them
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=100)


def return_cap(config) -> float | None:
    """The most a training episode can return, when there is one: in the dream without a reward
    head each step returns 1 (rnn/dream.py), so an episode returns at most max_dream_steps."""
    if config.controller.mode == "dream" and not config.rnn.predict_reward:
        return float(config.controller.max_dream_steps)
    return None


def capped_generations(records: list[dict], cap: float | None) -> list[int]:
    """Generations in which every candidate's every rollout returned the cap: their mean return
    is the cap (no return exceeds it), their fitness differs only by weight decay, and CMA-ES
    ranks the candidates by weight decay alone. Float32 returns: a relative tolerance of 1e-6."""
    if cap is None:
        return []
    return [record["generation"] for record in records if record["return_mean"] >= cap * (1 - 1e-6)]


def cap_note(records: list[dict], cap: float | None) -> str | None:
    """The text curve.png shows when some generation had nothing to rank, else None."""
    capped = capped_generations(records, cap)
    if not capped:
        return None
    where = "in every generation" if len(capped) == len(records) else f"in {len(capped)} of {len(records)} generations (x)"
    return f"every candidate reached the dream cap of {cap:g} steps {where}:\nnothing to rank (fitness = {cap:g} - weight decay)"


def mark_return_cap(axes, records: list[dict], cap: float | None) -> None:
    """Say on the axes when every candidate reached the cap, and keep a flat curve readable: fitness
    values that differ by weight decay alone would otherwise be drawn as noise about an offset
    (an axis reading +1.99999e2)."""
    note = cap_note(records, cap)
    if note is not None:
        capped = capped_generations(records, cap)
        axes.axhline(cap, color="black", linestyle="--", linewidth=1)
        if len(capped) < len(records):
            axes.plot(capped, [cap] * len(capped), "kx", markersize=8)
        axes.text(0.5, 0.75, note, transform=axes.transAxes, ha="center", va="center", fontsize=11, bbox={"facecolor": "white", "alpha": 0.9})
    low, high = axes.get_ylim()
    centre = (low + high) / 2
    if high - low < 1e-3 * max(1.0, abs(centre)):  # flat to within float noise
        half_height = max(1.0, 0.05 * abs(centre))
        axes.set_ylim(centre - half_height, centre + half_height)
    axes.ticklabel_format(axis="y", style="plain", useOffset=False)


# --- the training loop --------------------------------------------------------------------------


def train_controller(
    config,
    run_dir: Path,
    workers: Workers,
    scorer: Callable | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    initial_mean: np.ndarray | None = None,
) -> dict:
    """Run CMA-ES from the last finished generation to controller.num_generations.

    Every rank calls this; rank 0 owns CMA-ES and the files. scorer: see make_scorer (built
    on every rank if not given). initial_mean: CMA-ES's x0 when no saved state exists (zeros if
    None). Returns a summary on rank 0 ({} elsewhere).
    """
    run_dir = Path(run_dir)
    settings = config.controller
    rank0 = on_root(workers, lambda: Rank0(config, RunLayout(run_dir).controller, log, progress, initial_mean))
    first_generation = workers.broadcast(rank0.strategy.generation if workers.is_root else None)
    if scorer is None:
        scorer = workers.guarded(lambda: make_scorer(config, run_dir))
    on_root(workers, lambda: rank0.start(workers.size))

    for generation in range(first_generation, settings.num_generations):
        started = time.perf_counter()
        candidates, rollouts = workers.broadcast(on_root(workers, lambda: (rank0.ask(), rank0.rollouts())))
        seeds = generation_seeds(settings.seed, generation, settings.population_size, rollouts, shared=settings.shared_episodes)
        job_returns = score_jobs(scorer, workers, candidates, seeds)
        record = on_root(workers, lambda: rank0.tell(generation, job_returns, seeds, rollouts))  # noqa: B023 (called at once)
        if settings.eval_every > 0 and ((generation + 1) % settings.eval_every == 0 or generation + 1 == settings.num_generations):
            # the authors' periodic check: the distribution mean on more rollouts
            mean_params = workers.broadcast(rank0.strategy.mean if workers.is_root else None)
            mean_seeds = mean_score_seeds(settings.eval_set, settings.seed, generation, settings.eval_rollouts)
            mean_scores = score_jobs(scorer, workers, mean_params[None], mean_seeds)
            on_root(workers, lambda: rank0.score_mean(record, generation, mean_scores))  # noqa: B023 (called at once)
        on_root(workers, lambda: rank0.save(record, time.perf_counter() - started))  # noqa: B023 (called at once)

    return on_root(workers, lambda: rank0.finish(workers.size)) or {}
