"""Iterative training (paper, section 6): rounds of real episodes with the current controller, M
fine-tuned on them, C retrained in the new dream, the new controller scored in the real game.

  python -m scripts.iterate --run-dir DIR --rounds N

Needs a finished pipeline (V, series, M, C; the first round starts from DIR/controller/mean.npz)
trained in the dream (Doom, controller.mode=dream). Makes rounds 1..N (those already finished are
left untouched, so rerunning the same command after a kill resumes the unfinished round, and a
larger N adds rounds). Round r, in DIR/iterate/round_<r:03d>/ (see workflows/iterate.py):
  rollouts/    iterate.episodes_per_round real episodes with round r-1's mean controller, its
               action plus N(0, iterate.action_noise^2) noise (one process, envs in lockstep)
  series/      those episodes encoded by the run's V
  rnn/         M fine-tuned for iterate.rnn_epochs epochs from round r-1's M, on every series so far,
               with its calibration.json (fit on the episodes it held out, this round's own included)
  controller/  CMA-ES in that M's dream at controller.temperature, x0 = round r-1's mean,
               sigma0 = controller.sigma_init, iterate.controller_generations generations (one process)
  eval/        the new mean on iterate.eval_episodes fresh real episodes (seeds evaluate.seed + k)
  eval_validation/  the same on the validation seeds 2^29 + k (controller/seeds.py)
  fidelity/    the fidelity report (scripts.fidelity) on the round, iterate.fidelity_episodes
               episodes per policy and side (0: none; a report already there keeps its count)
  config.json, vae/ (a link to DIR/vae): the round folder is a run directory for scripts.evaluate,
               scripts.dream and scripts.fidelity
DIR/iterate/rounds.json lists every finished round: new_episodes, real_mean, real_std (evaluate's
seeds), validation_mean, validation_std (the validation seeds), dream_mean (the mean's return in
the dream at its last scored generation), dream_over_real (the fidelity report's dream/game mean
episode length of the random policy, each held action and the controller: 1 is a dream as hard as
the game; aim for 0.8-1.25) with dream_over_real_standard_error, each ratio's standard error, and
the seconds of each sub-step; and best_round_by_validation, the
round whose validation_mean is highest (its real_mean is then a score no choice has seen).
Rounds finished before a sub-step existed get it on the next run. --force discards every round.
"""

import copy
import os

from common.layout import RunLayout
from scripts import stage

STAGE = "iterate"


def add_arguments(parser):
    parser.add_argument("--rounds", type=int, required=True, help="make rounds 1..N (finished ones are kept as they are)")


def round_config(config):
    """The config a round's stages run with: the iterate section's training lengths and evaluation size."""
    result = copy.deepcopy(config)
    result.rnn.epochs = config.iterate.rnn_epochs
    result.controller.num_generations = config.iterate.controller_generations
    result.evaluate.episodes = config.iterate.eval_episodes
    result.evaluate.params = "mean"
    return result


def check_settings(config) -> None:
    iterate = config.iterate
    if config.controller.mode != "dream":
        raise stage.StageError(
            f"controller.mode={config.controller.mode!r}: iterative training here retrains C in M's dream (the paper's Doom procedure, "
            "controller.mode=dream); a controller trained in the real environment (CarRacing) is not supported"
        )
    for key, value, least in (
        ("iterate.episodes_per_round", iterate.episodes_per_round, 1),
        ("iterate.eval_episodes", iterate.eval_episodes, 1),
        ("iterate.rnn_epochs", iterate.rnn_epochs, 0),
        ("iterate.controller_generations", iterate.controller_generations, 0),
        ("iterate.fidelity_episodes", iterate.fidelity_episodes, 0),
    ):
        if value < least:
            raise stage.StageError(f"{key}={value}: expected at least {least}")
    if not iterate.action_noise >= 0:  # also refuses NaN
        raise stage.StageError(f"iterate.action_noise={iterate.action_noise}: expected a standard deviation >= 0")
    if iterate.fidelity_episodes > 0 and iterate.episodes_per_round < 2:
        raise stage.StageError(
            f"iterate.fidelity_episodes={iterate.fidelity_episodes} with iterate.episodes_per_round={iterate.episodes_per_round}: the round's "
            "fidelity report checks M on the round's episodes it held out, which needs at least 2 a round; collect more or set iterate.fidelity_episodes=0"
        )


def check_seeds(config, run_dir) -> None:
    """Collection seeds [2^30, 2^31) apart from generate's (base_seed + index) and the evaluation's."""
    from controller.seeds import evaluation_seeds
    from env.collect import dropped_indices
    from env.rollouts import episode_index, list_episodes
    from workflows.iterate import COLLECTION_SEED_BASE

    rollouts = RunLayout(run_dir).rollouts
    indices = [episode_index(path) for path in list_episodes(rollouts)] + sorted(dropped_indices(rollouts))
    last_generate_seed = config.generate.base_seed + max(indices, default=0)
    last_evaluation_seed = int(evaluation_seeds(config.evaluate.seed, config.iterate.eval_episodes)[-1])
    for name, value in (("generate.base_seed", last_generate_seed), ("evaluate.seed", last_evaluation_seed)):
        if value >= COLLECTION_SEED_BASE:
            raise stage.StageError(
                f"{name}: seeds up to {value} reach the iterative collection's seeds [2^30, 2^31); pick a smaller {name} (`--set {name}=...`)"
            )


def validate_round(config, run_dir, number: int, finished: bool, force: bool) -> None:
    """The files round `number` will read or resume from."""
    from controller.es import EvolutionStrategy
    from controller.policy import controller_from_config
    from controller.store import load_params
    from env.rollouts import episode_length, list_episodes
    from rnn.calibration import done_rule
    from rnn.store import load_mdn_rnn
    from vae.series import list_series, read_initial_z, read_series
    from workflows.iterate import start_over_command

    round_run = RunLayout(run_dir).round(number)
    folder = round_run.run_dir
    controller = controller_from_config(config)
    for path in list_series(round_run.series):
        read_series(path, config.vae.z_size, config.env.action_size)
    if finished:  # the next round starts from its M, C and first frames
        load_mdn_rnn(round_run.rnn, config)
        load_params(round_run.controller_params(), controller, fix_hint=f"rerun `{start_over_command(run_dir)}`")
        read_initial_z(round_run.series, config.vae.z_size)
        if config.iterate.fidelity_episodes > 0 and not stage.done_path(folder, "round_fidelity").exists():
            done_rule(config, round_run.rnn)  # the round's fidelity report still to make ends its dreams by it
        return
    if force:
        return
    for path in list_episodes(round_run.rollouts):
        episode_length(path)
    if stage.done_path(folder, "extract").exists():
        read_initial_z(round_run.series, config.vae.z_size)
    stage.check_checkpoint(round_run.checkpoint("train_rnn"), STAGE, run_dir, force_command=start_over_command(run_dir))
    if stage.done_path(folder, "train_rnn").exists():
        load_mdn_rnn(round_run.rnn, config)
        done_rule(config, round_run.rnn)  # C's retraining reads it with controller.done_rule=sampled
    if round_run.es_state.exists():
        EvolutionStrategy.load(round_run.es_state, controller.num_params)


def round_trained(folder) -> bool:
    """Whether the round made its M and C and scored them on evaluate's seeds (the next round can start from it)."""
    from workflows.iterate import TRAINING_STEPS

    return all(stage.done_path(folder, step).exists() for step in TRAINING_STEPS)


def round_finished(folder, config) -> bool:
    """Whether every sub-step the config asks for is done (its scores included)."""
    from workflows.iterate import round_steps

    return all(stage.done_path(folder, step).exists() for step in round_steps(config))


def validate(invocation):
    """Every input, checked before anything is written: V, M and C of the run, its series and first
    frames, the seeds, and every existing round (the one to resume included). Returns the encoder."""
    from controller.store import load_controller
    from rnn.store import load_mdn_rnn
    from vae.series import list_series, read_initial_z, read_series
    from vae.store import load_part
    from workflows import iterate

    config, run_dir, arguments = invocation.config, invocation.run_dir, invocation.arguments
    run = invocation.layout
    encoder = load_part(run.vae, "encoder", config.vae)
    if config.evaluate.video:
        load_part(run.vae, "decoder", config.vae)
    model = load_mdn_rnn(run.rnn, config)
    params, _, _ = load_controller(config, run_dir, "mean")
    series = list_series(run.series)
    if not series:
        raise stage.StageError(f"{run.series} holds no series files; run `{run.command('extract')}`")
    for path in series:
        read_series(path, config.vae.z_size, config.env.action_size)
    read_initial_z(run.series, config.vae.z_size)
    check_seeds(config, run_dir)
    if arguments.force:
        return encoder
    iterate.check_rounds_source(run_dir, iterate.source_fingerprints(encoder, model, params))
    numbers = run.round_numbers()
    if numbers != list(range(1, len(numbers) + 1)):
        raise stage.StageError(
            f"{run.iterate} holds rounds {numbers}: expected 1..{len(numbers)} with none missing; rerun `{iterate.start_over_command(run_dir)}` to start them over"
        )
    for number in numbers:
        finished = round_trained(run.round(number).run_dir)
        if not finished and number != numbers[-1]:
            raise stage.StageError(
                f"{run.round(number).run_dir} is unfinished but later rounds exist; rerun `{iterate.start_over_command(run_dir)}` to start them over"
            )
        validate_round(round_config(config), run_dir, number, finished, arguments.force)
    return encoder


def main(argv=None):
    stage.limit_threads(1)
    invocation = stage.parse(STAGE, __doc__, argv, add_arguments=add_arguments)
    config, run_dir, arguments = invocation.config, invocation.run_dir, invocation.arguments
    run = invocation.layout
    if arguments.rounds < 0:
        raise stage.StageError(f"--rounds {arguments.rounds}: expected at least 0")
    check_settings(config)  # the config alone, before any file is read
    encoder = stage.begin(invocation, validate=validate)

    from controller.store import load_controller
    from rnn.store import load_mdn_rnn
    from scripts.fidelity import heldout_split
    from workflows import iterate

    config_of_round = round_config(config)
    todo = [number for number in range(1, arguments.rounds + 1) if not round_finished(run.round(number).run_dir, config_of_round)]
    if todo:
        stage.clear_done(run_dir, STAGE)  # unfinished until marked done again
        params, _, _ = load_controller(config, run_dir, "mean")
        iterate.record_source(run_dir, iterate.source_fingerprints(encoder, load_mdn_rnn(run.rnn, config), params))
    for number in todo:
        folder = run.round(number).run_dir
        print(f"iterate: round {number} of {arguments.rounds} in {folder}", flush=True)
        prepare_round(folder, run_dir, config_of_round)
        iterate.run_round(
            config_of_round,
            run_dir,
            number,
            encoder,
            is_done=lambda step, folder=folder: stage.done_path(folder, step).exists(),
            mark_done=lambda step, summary, folder=folder: stage.mark_done(folder, step, config_of_round, summary=summary),
            heldout_split=lambda folder: heldout_split(folder, config_of_round),
        )
        iterate.write_rounds(run_dir, read_records(run_dir, config_of_round))
    records = read_records(run_dir, config_of_round)
    iterate.write_rounds(run_dir, records)  # unchanged (not rewritten) when every round was already finished
    if not stage.done_path(run_dir, STAGE).exists():
        stage.mark_done(run_dir, STAGE, config, summary={"rounds": len(records)})
    for line in summary_lines(records):
        print(line)
    return records


def summary_lines(records: list[dict]) -> list[str]:
    """Each round's scores and dream difficulty, then the round validation picks."""
    from workflows.iterate import best_round

    lines = []
    for record in records:
        dream = "-" if record["dream_mean"] is None else f"{record['dream_mean']:.1f}"
        ratios = record["dream_over_real"]
        difficulty = (
            ""
            if ratios is None
            else "; dream/game lengths " + ", ".join(f"{name} {'-' if value is None else f'{value:.2f}'}" for name, value in ratios.items())
        )
        lines.append(
            f"iterate: round {record['round']}: {record['new_episodes']} new episodes, real {record['real_mean']:.1f} ± {record['real_std']:.1f}, "
            f"validation {record['validation_mean']:.1f} ± {record['validation_std']:.1f}, dream {dream}{difficulty}"
        )
    best = best_round(records)
    if best is not None:
        record = next(record for record in records if record["round"] == best)
        lines.append(
            f"iterate: best round by validation: {best} (validation {record['validation_mean']:.1f}; on evaluate's seeds, "
            f"which chose nothing, {record['real_mean']:.1f} ± {record['real_std']:.1f})"
        )
    return lines


def prepare_round(folder, run_dir, config) -> None:
    """The round folder as a run directory: its config.json and vae/ linked to the run's V."""
    folder.mkdir(parents=True, exist_ok=True)
    stage.save_config(folder, config)
    link = RunLayout(folder).vae
    if not link.is_symlink():
        os.symlink(os.path.relpath(RunLayout(run_dir).vae, folder), link)


def read_records(run_dir, config) -> list[dict]:
    """rounds.json's entries: every finished round in order, from its sub-steps' done.json summaries."""
    from common.files import read_json
    from workflows import iterate

    records = []
    run = RunLayout(run_dir)
    for number in run.round_numbers():
        folder = run.round(number).run_dir
        if not round_finished(folder, config):
            break
        summaries = {step: read_json(stage.done_path(folder, step))["summary"] for step in iterate.STEPS if stage.done_path(folder, step).exists()}
        records.append(iterate.round_record(number, summaries))
    return records


if __name__ == "__main__":
    stage.run_main(main)
