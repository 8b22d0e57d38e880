"""Calibrate M's done head against real deaths: DIR/rnn/calibration.json (rnn/calibration.py).

train_rnn writes that file when it finishes (and so does each iterate round's M). This command
makes it again: for a run whose M finished before the file existed, an iterate round
(DIR/iterate/round_NNN), or an exported agent. The dream reads it with controller.done_rule=sampled.

  python -m scripts.calibrate --run-dir DIR [--source auto|heldout|play] [--episodes 100] [--seed 600000000]

--source heldout: the series episodes M held out of its training (its own split by rnn.validation_fraction
  and rnn.seed), exactly what train_rnn fits on; for an iterate round, the split of every series
  folder that round's M trained on (the run's and those of rounds 1..N), the round's own included.
--source play: fresh real episodes, for a run without held-out series (an exported agent ships only
  series/initial_z.npz): --episodes with the random data-collection policy and --episodes with the
  controller's mean (controller/mean.npz, if there is one), episode k of each with seed SEED + k,
  every frame encoded by V (workflows/calibration_episodes.py). Only their seeds and counts are kept,
  in calibration.json; every episode is used, also the short ones generate drops.
--source auto (the default): heldout when M's held-out series episodes hold a death, else play.
"""

from pathlib import Path

import numpy as np

from common.layout import MEAN_NAME, RunLayout, round_number
from scripts import stage

STAGE = "calibrate"
MEAN_PATH = RunLayout(Path()).controller_params(MEAN_NAME)  # the controller played, relative to the run directory


def add_arguments(parser):
    from workflows.calibration_episodes import DEFAULT_FIRST_SEED

    parser.add_argument("--source", choices=("auto", "heldout", "play"), default="auto", help="the episodes to fit on (default auto)")
    parser.add_argument("--episodes", type=int, default=100, help="--source play: real episodes per policy (default 100)")
    parser.add_argument("--seed", type=int, default=DEFAULT_FIRST_SEED, help=f"--source play: episode k uses seed SEED + k (default {DEFAULT_FIRST_SEED})")


def series_folders(run_dir: Path) -> list[Path]:
    """The series folders M of this run directory trained on: an iterate round's M trained on the
    run's and rounds 1..N's (workflows/iterate.py); any other run's on its own series/."""
    from workflows import iterate

    number = round_number(run_dir)
    if number is not None:
        return iterate.series_folders(run_dir.parent.parent, number)
    return [RunLayout(run_dir).series]


def heldout_paths(run_dir: Path, config) -> list[Path]:
    """M's own held-out series files (rnn/train.py's split of every folder it trained on)."""
    from rnn.data import split_series_paths
    from vae.series import list_series

    paths = [path for folder in series_folders(run_dir) for path in list_series(folder)]
    return split_series_paths(paths, config.rnn.validation_fraction, config.rnn.seed)[1]


def validate(invocation):
    """M (with a done head) and, by source, its held-out series or V, the env and the controller;
    returns (source, model, held-out paths, encoder, controller params or None)."""
    from rnn.store import load_mdn_rnn
    from vae.series import read_series
    from vae.store import load_part
    from workflows.calibration_episodes import check_seeds

    config, run_dir, arguments = invocation.config, invocation.run_dir, invocation.arguments
    run = invocation.layout
    model = load_mdn_rnn(run.rnn, config)
    if not model.predict_done:
        raise stage.StageError(f"{run.rnn_weights}: this M has no done head (rnn.predict_done=false): there is nothing to calibrate")
    paths = heldout_paths(run_dir, config)
    deaths = sum(int(read_series(path, config.vae.z_size, config.env.action_size)["done"].sum()) for path in paths)
    source = arguments.source if arguments.source != "auto" else ("heldout" if deaths else "play")
    if source == "heldout":
        if not deaths:
            raise stage.StageError(
                f"{run_dir}: M's held-out series episodes ({len(paths)}) hold no death (none held out: no series episodes in {run.series}, "
                f"or rnn.validation_fraction 0): use `{stage.command_for(STAGE, run_dir)} --source play` to fit on freshly played episodes"
            )
        return source, model, paths, None, None
    try:
        check_seeds(arguments.seed, arguments.episodes)
    except ValueError as error:
        raise stage.StageError(f"--seed {arguments.seed} --episodes {arguments.episodes}: {error}") from None
    encoder = load_part(run.vae, "encoder", config.vae)
    params = None
    if run.controller_params(MEAN_NAME).exists():
        from controller.store import load_controller

        params, _, _ = load_controller(config, run_dir, "mean")
    return source, model, [], encoder, params


def play(config, run_dir: Path, model, encoder, params, episodes: int, first_seed: int) -> tuple[list[dict], dict, list[str]]:
    """The played episodes (random policy, then the controller if given), their description and each one's policy."""
    from tqdm import tqdm

    from controller.agent import Agent
    from controller.policy import controller_from_config
    from workflows.calibration_episodes import controller_series, random_policy_series

    seeds = first_seed + np.arange(episodes, dtype=np.int64)
    batch_size = config.vae.extract_batch_size
    with tqdm(total=episodes, desc="random policy", unit="ep", leave=False) as bar:
        played = random_policy_series(encoder, config.env, config.generate, seeds, batch_size, bar.update)
    policies = {"random": {"policy": config.generate.policy, "episodes": episodes, "first_seed": first_seed}}
    if params is not None:
        agent = Agent(encoder, model, controller_from_config(config), sample_z=config.controller.sample_z)
        with tqdm(total=episodes, desc="controller", unit="ep", leave=False) as bar:
            played += controller_series(agent, config.env, params, seeds, config.controller.envs_per_worker, batch_size, bar.update)
        policies["controller"] = {"params": str(MEAN_PATH), "episodes": episodes, "first_seed": first_seed}
    note = "fresh real episodes, frames encoded by V (workflows/calibration_episodes.py)" + ("" if params is not None else f"; no {MEAN_PATH}")
    return played, {"source": "play", "note": note, "policies": policies}, [name for name in policies for _ in range(episodes)]


def main(argv=None):
    stage.limit_threads(1)
    invocation = stage.parse(STAGE, __doc__, argv, add_arguments=add_arguments)
    config, run_dir, arguments = invocation.config, invocation.run_dir, invocation.arguments
    run = invocation.layout
    # DIR/rnn is train_rnn's folder: one writer at a time
    stage.acquire_lock(stage.lock_path(run_dir, "train_rnn"), STAGE, run.rnn)
    source, model, paths, encoder, params = stage.begin(invocation, requires=("train_rnn",), validate=validate)

    from rnn.calibration import NothingToFit, calibrate_episodes, calibrate_series, summary, write_calibration
    from vae.extract import weights_fingerprint

    try:
        if source == "heldout":
            record = calibrate_series(model, paths, run.rnn)
        else:
            episodes, data, groups = play(config, run_dir, model, encoder, params, arguments.episodes, arguments.seed)
            record = calibrate_episodes(model, episodes, data, weights_fingerprint(run.rnn_weights), groups)
    except NothingToFit as error:
        more = "--source play with more --episodes" if source == "heldout" else "more --episodes"
        raise stage.StageError(f"{run_dir}: the {source} episodes cannot calibrate M's done head ({error}); try {more}") from None
    path = write_calibration(run.rnn, record)
    print(f"calibrate: {summary(record)} ({record['scale_verdict']}) -> {path}")
    return record


if __name__ == "__main__":
    stage.run_main(main)
