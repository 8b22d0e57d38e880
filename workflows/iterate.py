"""Iterative training (paper, section 6, "Iterative Training Procedure"): rounds of
  1. real episodes played with the current controller (the previous round's CMA-ES mean), with
     exploration noise on its action, saved as rollout files;
  2. encoded by the same V into series;
  3. M fine-tuned from the previous round's weights on every series so far (random policy + rounds),
     its done head calibrated on the episodes it held out of each folder, this round's own included
     (rnn/calibration.py; used by the dream when controller.done_rule=sampled);
  4. C retrained in the new M's dream, CMA-ES started at the previous mean;
  5. the new mean scored on fresh real episodes: on evaluate's seeds (eval/) and on the validation
     seeds 2^29 + k (eval_validation/, controller/seeds.py), which alone name the best round;
  6. the fidelity report (workflows/fidelity.py) on the round folder, iterate.fidelity_episodes
     episodes per policy and side (0: skipped): the dream/game episode-length ratio of the random
     policy, each held action and the controller, i.e. how hard the dream is (aim 0.8-1.25 each).
Round r lives in DIR/iterate/round_<r:03d>/ with the run directory's own layout (rollouts/, series/,
rnn/, controller/, eval/, eval_validation/, fidelity/, a config.json and vae/ as a link to the run's
V), so the stage scripts can be pointed at it. Round 1 starts from the run's own M (DIR/rnn) and C (DIR/controller/mean.npz).

Collection (step 1): episode i of round r uses seed collection_seeds(iterate.seed, r)[i], a hash in
[2^30, 2^31): above generate's seeds (base_seed + i) and evaluation's (evaluate.seed + k), below the
training seeds [2^31, 2^32) (controller/seeds.py). Its randomness (the env, V's z samples, the action
noise) comes from that seed only, so a resumed collection writes the same episodes. The action taken
and recorded is clip(a + noise, -1, 1), noise ~ N(0, iterate.action_noise^2) per step and output: the
continuous value M is trained on; the env maps it as usual (Doom: thresholds at +-1/3). Every
episode is kept (no minimum length: the controller's short episodes are the failures M must learn).
"""

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.errors import ArtifactError
from common.files import read_json, read_jsonl, write_json
from common.layout import FOLDERS, RunLayout
from controller.agent import Agent
from controller.dream_scoring import DreamScorer
from controller.evaluate import evaluate
from controller.parallel import Workers
from controller.policy import controller_from_config
from controller.store import load_params
from controller.train import train_controller
from env.batch import BatchEnv
from env.rollouts import episode_path, list_episodes, write_rollout
from rnn.calibration import done_rule as dream_done_rule
from rnn.store import load_mdn_rnn
from rnn.train import train_rnn
from vae.extract import check_source as check_encoder_source
from vae.extract import extract_series, weights_fingerprint
from vae.series import read_initial_z

COLLECTION_SEED_BASE = 2**30  # collection seeds lie in [2^30, 2^31)
CHUNK_ROUNDS = 4  # episodes are collected in chunks of CHUNK_ROUNDS x envs; a resume replays an unfinished chunk
BEST_KEY = "best_round_by_validation"  # rounds.json: the round whose mean scored best on the validation seeds
# A round's sub-steps, named after the stages whose folders (and done.json) they fill, in order:
# those that make the next round's M and C, then the further scores of the round's mean.
TRAINING_STEPS = {"generate": "collect", "extract": "encode", "train_rnn": "rnn", "train_controller": "controller", "evaluate": "evaluate"}
SCORING_STEPS = {"evaluate_validation": "validate", "round_fidelity": "fidelity"}
STEPS = {**TRAINING_STEPS, **SCORING_STEPS}


def round_steps(config) -> list[str]:
    """The sub-steps that finish a round: all of STEPS, the fidelity report only with iterate.fidelity_episodes > 0."""
    return [step for step in STEPS if step != "round_fidelity" or config.iterate.fidelity_episodes > 0]


def previous_round(run_dir: str | Path, number: int) -> RunLayout:
    """Where round `number` takes M and C from: the run itself for round 1, else the round before."""
    run = RunLayout(run_dir)
    return run if number == 1 else run.round(number - 1)


def start_over_command(run_dir: str | Path) -> str:
    """The command that discards every round of the run and makes them again."""
    return RunLayout(run_dir).command("iterate", "--rounds", "N", "--force")


def collection_seeds(seed: int, round_number: int, count: int) -> np.ndarray:
    """(count,) int64: the env seed of each collection episode of a round, a hash of (seed, round, index) in [2^30, 2^31)."""
    values = [np.random.SeedSequence([seed, round_number, index]).generate_state(1, np.uint32)[0] for index in range(count)]
    return np.array([COLLECTION_SEED_BASE + int(value) % COLLECTION_SEED_BASE for value in values], np.int64)


def series_folders(run_dir: str | Path, number: int) -> list[Path]:
    """M's data in round `number`: the random-policy series and those of rounds 1..number."""
    run = RunLayout(run_dir)
    return [run.series, *(run.round(k).series for k in range(1, number + 1))]


def initial_table(folders: list[Path], z_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every real first frame of those folders (their initial_z.npz), where dreams start."""
    tables = [read_initial_z(folder, z_size) for folder in folders]
    return np.concatenate([mu for mu, _ in tables]), np.concatenate([logvar for _, logvar in tables])


def array_digest(arrays) -> str:
    """SHA-256 of arrays' shapes, dtypes and bytes: equal for equal weights, whatever file holds them."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def source_fingerprints(encoder, mdn_rnn, params: np.ndarray) -> dict:
    """What the rounds are made from: the run's V encoder, M and C mean (by content)."""
    return {
        "encoder_sha256": array_digest(encoder.get_weights()),
        "rnn_sha256": array_digest(mdn_rnn.get_weights()),
        "controller_sha256": array_digest([params]),
    }


def check_rounds_source(run_dir: Path, fingerprints: dict) -> None:
    """Refuse to add rounds to ones made from another V, M or C of the run."""
    path = RunLayout(run_dir).rounds_source
    if not path.exists():
        return
    recorded = read_json(path)
    changed = [key.removesuffix("_sha256") for key in fingerprints if recorded.get(key) != fingerprints[key]]
    if changed:
        raise ArtifactError(
            f"{path}: the rounds in {path.parent} were made from another {', '.join(changed)} than the run's "
            f"(the run's {', '.join(changed)} changed since they started). Rerun `{start_over_command(run_dir)}` to start them over."
        )


def record_source(run_dir: Path, fingerprints: dict) -> None:
    path = RunLayout(run_dir).rounds_source
    if not path.exists():
        write_json(path, fingerprints)


# --- step 1: real episodes with the current controller, with exploration noise ----------------------


def play_episodes(
    agent: Agent,
    batch_env: BatchEnv,
    params: np.ndarray,
    seeds: np.ndarray,
    action_noise: float,
    on_episode: Callable[[int, dict], None],
) -> None:
    """One episode per seed with controller `params` and exploration noise of std `action_noise`:
    Agent.run_episodes, which hands on_episode(job, episode) each finished episode in the rollout format
    (the action recorded is the one taken, clip(a + noise, -1, 1)). With action_noise 0 the episodes
    are the agent's noiseless ones."""
    agent.run_episodes(batch_env, np.repeat(np.asarray(params)[None], len(seeds), axis=0), seeds, action_noise=action_noise, on_episode=on_episode)


def collect_round(
    agent: Agent,
    env_config,
    params: np.ndarray,
    seeds: np.ndarray,
    action_noise: float,
    folder: Path,
    num_envs: int,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict:
    """Play episode i (seed seeds[i]) into folder/<i:06d>.npz for every i without its file.

    Episodes go in fixed chunks of CHUNK_ROUNDS x num_envs; a chunk with a missing file is played
    whole (only missing files are written), so a resumed collection steps every env in the same
    batches as an uninterrupted one."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    chunk_size = CHUNK_ROUNDS * num_envs
    chunks = [list(range(start, min(start + chunk_size, len(seeds)))) for start in range(0, len(seeds), chunk_size)]
    todo = [chunk for chunk in chunks if any(not episode_path(folder, index).exists() for index in chunk)]
    already = len(seeds) - sum(sum(not episode_path(folder, index).exists() for index in chunk) for chunk in todo)
    log(f"iterate: collecting {len(seeds)} episodes with action noise {action_noise} ({num_envs} envs in lockstep), {already} already on disk")
    bar = tqdm(total=len(seeds), initial=already, desc="collect", unit="ep", leave=False, disable=not progress)
    written, steps = 0, 0
    batch_env = BatchEnv(env_config, min(num_envs, len(seeds))) if todo else None
    try:
        for chunk in todo:

            def save(job: int, episode: dict, chunk=chunk) -> None:
                nonlocal written, steps
                path = episode_path(folder, chunk[job])
                if not path.exists():
                    write_rollout(path, **episode)
                    written += 1
                    steps += len(episode["done"])
                    bar.update(1)

            play_episodes(agent, batch_env, params, seeds[chunk], action_noise, save)
    finally:
        if batch_env is not None:
            batch_env.close()
        bar.close()
    return {"episodes": len(list_episodes(folder)), "new_episodes": written, "new_steps": steps, "seconds": time.perf_counter() - started}


# --- steps 2-5 ------------------------------------------------------------------------------------


def encode_round(rollouts_dir: Path, series_dir: Path, encoder, encoder_path: Path, config, log=print, progress: bool = True) -> dict:
    """The round's rollouts through the run's V (vae/extract.py), source.json included."""
    started = time.perf_counter()
    check_encoder_source(series_dir, weights_fingerprint(encoder_path), series_dir.parent)
    summary = extract_series(rollouts_dir, series_dir, encoder, config.env.action_size, config.vae.extract_batch_size, progress=progress, log=log)
    return {**summary, "seconds": time.perf_counter() - started}


def finetune_rnn(series: list[Path], rnn_dir: Path, initial_weights: Path, config, progress: bool = True) -> dict:
    """M trained for config.rnn.epochs over every series file of the `series` folders (rnn/train.py),
    starting from `initial_weights` (the previous round's M) unless rnn_dir holds a checkpoint to resume."""
    started = time.perf_counter()
    summary = train_rnn(series, rnn_dir, config.rnn, config.vae.z_size, config.env.action_size, progress=progress, initial_weights=initial_weights)
    return {**summary, "seconds": time.perf_counter() - started}


def dream_mean_return(metrics_path: Path) -> float | None:
    """The distribution mean's return in the dream at the last generation that scored it (C's metrics.jsonl)."""
    scored = [record for record in read_jsonl(metrics_path) if "mean_params_return" in record]
    return scored[-1]["mean_params_return"] if scored else None


def retrain_controller(
    config, output_dir: Path, initial_mean: np.ndarray, initial_mu: np.ndarray, initial_logvar: np.ndarray, log=print, progress: bool = True
) -> dict:
    """CMA-ES in the dream of output_dir/rnn at controller.temperature, ended by controller.done_rule with
    that M's calibration (controller/train.py), from x0 = initial_mean, for controller.num_generations;
    resumes from output_dir/controller/es_state.pkl."""
    started = time.perf_counter()
    output = RunLayout(output_dir)
    model = load_mdn_rnn(output.rnn, config)
    done_rule = dream_done_rule(config, output.rnn)
    scorer = DreamScorer.from_config(config, model, initial_mu, initial_logvar, done_rule).run
    summary = train_controller(config, output_dir, Workers(communicator=None), scorer=scorer, log=log, progress=progress, initial_mean=initial_mean)
    return {**summary, "dream_mean": dream_mean_return(output.metrics("train_controller")), "seconds": time.perf_counter() - started}


def evaluate_round(config, output_dir: Path, log=print, progress: bool = True, validation: bool = False) -> dict:
    """controller/evaluate.py on output_dir (its controller/mean.npz, rnn/ and vae/), config.evaluate.episodes episodes:
    evaluate's seeds into eval/, or (validation) the validation seeds 2^29 + k into eval_validation/."""
    started = time.perf_counter()
    folder = FOLDERS["evaluate_validation" if validation else "evaluate"]
    summary = evaluate(config, output_dir, log=log, progress=progress, folder=folder, validation=validation)
    return {**summary, "seconds": time.perf_counter() - started}


def length_ratios(report: dict) -> tuple[dict, dict, dict]:
    """A fidelity report's dream/game mean episode length of each policy (random_policy, held_<action>,
    controller; None when the report skipped it), the ratios' standard errors, and those mean lengths
    {"dream": ..., "real": ...}."""
    parts = {"random_policy": report["random_policy"]}
    held = report["held_actions"]
    if not held["skipped"]:
        parts.update({f"held_{name}": part for name, part in held["actions"].items()})
    parts["controller"] = None if report["controller"]["skipped"] else report["controller"]

    def each(value) -> dict:
        return {name: None if part is None else value(part) for name, part in parts.items()}

    return (
        each(lambda part: part["dream_over_real_mean"]),
        each(lambda part: part["dream_over_real_standard_error"]),
        each(lambda part: {side: part[side]["mean"] for side in ("dream", "real")}),
    )


def fidelity_round(config, output_dir: Path, heldout: tuple[list[Path], bool], log=print, progress: bool = True) -> dict:
    """The fidelity report (workflows/fidelity.py) on the round folder: its M, mean controller, first
    frames and done rule (controller.done_rule), iterate.fidelity_episodes episodes per policy and side.
    heldout: the series files M held out of the round's own episodes and whether training really left
    them out (scripts/fidelity.py's heldout_split). Resumes from the report's saved parts. A report
    already in the round folder (scripts.fidelity run on it) keeps its episodes and seeds, so its
    parts are reused, not replaced by a smaller report."""
    from workflows import fidelity

    started = time.perf_counter()
    settings = fidelity.FidelitySettings(episodes=config.iterate.fidelity_episodes, params="mean")
    existing = RunLayout(output_dir).fidelity / fidelity.REPORT_NAME
    if existing.exists():
        report = read_json(existing)
        settings.episodes, settings.first_seed = report["episodes"], report["first_seed"]
        log(f"iterate: {existing} exists: the round's report keeps its {settings.episodes} episodes from seed {settings.first_seed}")
    paths, from_training = heldout
    inputs = fidelity.load_inputs(config, output_dir, settings, paths)
    report = fidelity.fidelity_report(config, output_dir, settings, inputs, from_training, log=log, progress=progress)
    ratios, errors, lengths = length_ratios(report)
    return {
        "episodes": settings.episodes,
        "first_seed": settings.first_seed,
        "done_rule": report["done_rule"]["description"],
        "dream_over_real": ratios,
        "dream_over_real_standard_error": errors,
        "mean_lengths": lengths,
        "seconds": time.perf_counter() - started,
    }


# --- one round ------------------------------------------------------------------------------------


def run_round(
    config,
    run_dir: Path,
    number: int,
    encoder,
    is_done: Callable[[str], bool],
    mark_done: Callable[[str, dict], None],
    heldout_split: Callable[[Path], tuple[list[Path], bool]],
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> None:
    """Round `number` (module docstring) into RunLayout(run_dir).round(number), a sub-step at a time;
    `config` is the round's (its rnn.epochs, controller.num_generations and evaluate.episodes set).

    is_done(step) / mark_done(step, summary): the round folder's done.json of a sub-step, named
    like the stage that fills the same folder (STEPS). A finished sub-step is skipped untouched;
    an unfinished one resumes from what it left on disk. heldout_split(round folder): the fidelity
    report's held-out series (scripts/fidelity.py)."""
    run = RunLayout(run_dir)
    output, previous = run.round(number), previous_round(run_dir, number)
    controller = controller_from_config(config)
    previous_mean, _ = load_params(previous.controller_params(), controller)
    if not is_done("generate"):
        iterate = config.iterate
        agent = Agent(encoder, load_mdn_rnn(previous.rnn, config), controller, sample_z=config.controller.sample_z)
        seeds = collection_seeds(iterate.seed, number, iterate.episodes_per_round)
        summary = collect_round(
            agent, config.env, previous_mean, seeds, iterate.action_noise, output.rollouts, config.controller.envs_per_worker, log, progress
        )
        mark_done("generate", {**summary, "action_noise": iterate.action_noise, "controller": str(previous.controller_params())})
    if not is_done("extract"):
        mark_done("extract", encode_round(output.rollouts, output.series, encoder, run.vae_weights("encoder"), config, log, progress))
    if not is_done("train_rnn"):
        mark_done("train_rnn", finetune_rnn(series_folders(run_dir, number), output.rnn, previous.rnn_weights, config, progress))
    if not is_done("train_controller"):
        initial_mu, initial_logvar = initial_table(series_folders(run_dir, number), config.vae.z_size)
        mark_done("train_controller", retrain_controller(config, output.run_dir, previous_mean, initial_mu, initial_logvar, log, progress))
    if not is_done("evaluate"):
        mark_done("evaluate", evaluate_round(config, output.run_dir, log, progress))
    if not is_done("evaluate_validation"):
        mark_done("evaluate_validation", evaluate_round(config, output.run_dir, log, progress, validation=True))
    if "round_fidelity" in round_steps(config) and not is_done("round_fidelity"):
        mark_done("round_fidelity", fidelity_round(config, output.run_dir, heldout_split(output.run_dir), log, progress))


def round_record(number: int, summaries: dict[str, dict]) -> dict:
    """rounds.json's entry of a finished round, from its sub-steps' done.json summaries (the
    fidelity report's may be missing: iterate.fidelity_episodes=0, then dream_over_real is None)."""
    fidelity = summaries.get("round_fidelity")
    return {
        "round": number,
        "new_episodes": summaries["generate"]["episodes"],
        "real_mean": summaries["evaluate"]["mean"],
        "real_std": summaries["evaluate"]["std"],
        "validation_mean": summaries["evaluate_validation"]["mean"],
        "validation_std": summaries["evaluate_validation"]["std"],
        "dream_mean": summaries["train_controller"]["dream_mean"],
        "dream_over_real": None if fidelity is None else fidelity["dream_over_real"],
        # a round made before the standard errors were recorded has none
        "dream_over_real_standard_error": None if fidelity is None else fidelity.get("dream_over_real_standard_error"),
        "seconds": {label: summaries[step]["seconds"] for step, label in STEPS.items() if step in summaries},
    }


def best_round(records: list[dict]) -> int | None:
    """The round whose mean scored highest on the validation seeds (the first of equals), never chosen
    by evaluate's seeds: those stay an unbiased score of the chosen round. None without rounds."""
    if not records:
        return None
    return records[int(np.argmax([record["validation_mean"] for record in records]))]["round"]


def write_rounds(run_dir: Path, records: list[dict]) -> bool:
    """DIR/iterate/rounds.json, rewritten (atomically) only if its content changes; True if written."""
    path = RunLayout(run_dir).rounds
    value = {"rounds": records, BEST_KEY: best_round(records)}
    if path.exists() and read_json(path) == value:
        return False
    write_json(path, value)
    return True
