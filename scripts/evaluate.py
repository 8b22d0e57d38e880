"""Score the trained controller, or the random policy beside it, on fresh real episodes (paper, sections 4.4 and 5).

Runs evaluate.episodes real-environment episodes (seeds evaluate.seed + k, never
used in training) with V + M + C and the saved 'best', 'mean' or 'selected' controller;
writes DIR/eval/returns.json (every episode), summary.json (mean ± std),
histogram.png and episode.mp4 (the real frame beside V's reconstruction).

--params random scores the run's data-collection policy (generate.policy) on the
same seeds instead, the baseline to put beside the controller's score. It needs
only DIR/config.json (no V, M or C) and writes DIR/eval_random/ (the same files,
no video). Unlike generate, it drops no short episode: every return counts.

--seed N scores a further set of fresh episodes, seeds N + k, into a folder of its
own, DIR/eval_seed<N>/ (DIR/eval_random_seed<N>/ with --params random), with its
own lock, resume and done.json; config.json (evaluate.seed) and DIR/eval/ stay as
they are, so a second seed set needs no copy of the run.

--validation scores the controller on the validation episodes 2^29 + k instead
(controller/seeds.py), into DIR/eval_validation/: the set to choose agents, rounds
and settings on, so that evaluate's seeds and --seed sets stay unseen by any choice.

  python -m scripts.evaluate --run-dir DIR [--episodes 100] [--params best|mean|selected|random] [--seed N | --validation]
"""

import copy

from common.layout import PARTIAL_NAME
from scripts import stage

STAGE = "evaluate"
RANDOM_STAGE = "evaluate_random"  # --params random: its own stage, folder and lock (DIR/eval_random)
VALIDATION_STAGE = "evaluate_validation"  # --validation: DIR/eval_validation, as in each iterate round


def add_arguments(parser):
    parser.add_argument("--episodes", type=int, help="episodes to run (overrides evaluate.episodes)")
    parser.add_argument(
        "--params",
        choices=("best", "mean", "selected", "random"),
        help="which saved controller (overrides evaluate.params; 'selected': the mean that scored best on the validation episodes), "
        "or 'random': the data-collection policy, written to DIR/eval_random",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="first seed of a further set of episodes, scored into DIR/eval_seed<N>/ (config.json and DIR/eval/ are left as they are)",
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help="score on the validation episodes 2^29 + k (the set choices are made on) into DIR/eval_validation/",
    )


def validate(invocation) -> None:
    """Before done.json is cleared: the controller, V's encoder and decoder and M all load for this config."""
    from common.files import read_json
    from controller.store import load_controller
    from rnn.store import load_mdn_rnn
    from vae.store import load_encoder_decoder

    config, run_dir = invocation.config, invocation.run_dir
    run = invocation.layout
    load_controller(config, run_dir, config.evaluate.params)
    load_encoder_decoder(run.vae, config.vae)
    load_mdn_rnn(run.rnn, config)
    partial = run_dir / stage.STAGES[invocation.stage].folder / PARTIAL_NAME
    if partial.exists():
        read_json(partial)


def validate_random(invocation) -> None:
    """Before anything is written: the seeds are evaluation seeds and a saved partial.json reads."""
    from common.files import read_json
    from controller.seeds import evaluation_seeds

    config, run_dir = invocation.config, invocation.run_dir
    evaluation_seeds(config.evaluate.seed, config.evaluate.episodes)
    partial = run_dir / stage.STAGES[invocation.stage].folder / PARTIAL_NAME
    if partial.exists():
        read_json(partial)


def seed_set(invocation):
    """The config the episodes are scored with. --seed N (other than evaluate.seed) switches the
    invocation to the stage of that seed set (its own folder) and returns a copy of the config with
    evaluate.seed = N; the run's config, which begin() saves, keeps its own evaluate.seed."""
    from controller.seeds import VALIDATION_SEED_BASE, evaluation_seeds

    config, seed = invocation.config, invocation.arguments.seed
    if invocation.arguments.validation:
        if seed is not None:
            raise stage.StageError(f"--seed {seed} and --validation: choose one (--validation plays the validation seeds 2^29 + k)")
        invocation.stage = VALIDATION_STAGE
        scored = copy.deepcopy(config)
        scored.evaluate.seed = VALIDATION_SEED_BASE  # the resume key and summary.json name the first seed
        return scored
    if seed is None or seed == config.evaluate.seed:
        return config
    evaluation_seeds(seed, config.evaluate.episodes, option="--seed")  # refused before anything is written
    invocation.stage = stage.seed_set_stage(invocation.stage, seed)
    scored = copy.deepcopy(config)
    scored.evaluate.seed = seed
    return scored


def main_random(invocation) -> None:
    from controller.evaluate import evaluate_random, finished_random_summary

    scored = seed_set(invocation)
    run_dir, name = invocation.run_dir, invocation.stage
    folder = stage.STAGES[name].folder
    stage.begin(invocation, validate=validate_random)
    if stage.done_path(run_dir, name).exists() and finished_random_summary(scored, run_dir, folder) is not None:
        print(f"evaluate: {run_dir / folder} already holds these {scored.evaluate.episodes} episodes (--force redoes them)")
        return
    stage.clear_done(run_dir, name)
    summary = evaluate_random(scored, run_dir, folder=folder)
    stage.mark_done(run_dir, name, scored, summary=summary)


def main(argv=None):
    stage.limit_threads(1)
    invocation = stage.parse(STAGE, __doc__, argv, add_arguments=add_arguments)
    config, run_dir, arguments = invocation.config, invocation.run_dir, invocation.arguments
    if arguments.episodes is not None:
        if arguments.episodes < 1:
            raise stage.StageError(f"--episodes {arguments.episodes}: expected at least 1")
        config.evaluate.episodes = arguments.episodes
    if arguments.params == "random":
        if arguments.validation:
            raise stage.StageError(
                "--params random --validation: the random policy is scored on evaluate's seeds or a --seed set; --validation scores a controller"
            )
        invocation.stage = RANDOM_STAGE  # evaluate.params stays as it is: it names the controller
        main_random(invocation)
        return
    if arguments.params is not None:
        config.evaluate.params = arguments.params

    stage.configure_devices("real")  # CPU-bound envs, small agent batches: keep off the GPU (before validation builds models)
    scored = seed_set(invocation)
    name = invocation.stage
    folder = stage.STAGES[name].folder
    stage.begin(invocation, validate=validate)
    from controller.evaluate import evaluate, finished_summary

    if stage.done_path(run_dir, name).exists() and finished_summary(scored, run_dir, folder) is not None:
        print(f"evaluate: {run_dir / folder} already holds these {scored.evaluate.episodes} episodes of this controller (--force redoes them)")
        return
    if not stage.done_path(run_dir, "train_controller").exists():
        print(f"evaluate: note: train_controller has not finished in {run_dir}; scoring the controller of its last saved generation")
    stage.clear_done(run_dir, name)

    summary = evaluate(scored, run_dir, folder=folder, validation=name == VALIDATION_STAGE)
    stage.mark_done(run_dir, name, scored, summary=summary)


if __name__ == "__main__":
    stage.run_main(main)
