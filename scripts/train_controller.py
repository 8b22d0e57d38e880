"""Train the controller C with CMA-ES (paper, sections 4.3 and 5).

controller.mode=real scores candidates in the real environment with V + M + C
(CarRacing, as the paper); controller.mode=dream scores them inside M's dream
at temperature controller.temperature (Doom, as the paper). Writes
DIR/controller/ (es_state.pkl, best.npz, mean.npz, selected.npz with
controller.eval_set=validation, metrics.jsonl, curve.png).

--init-from DIR2[:KIND] starts CMA-ES from run DIR2's saved controller KIND
(mean, the default; best; selected) instead of zeros: it must fit this run's
controller, and is recorded in config.json as controller.init_from (an absolute
path), so a resume and a reader know where the run started. A new run that
starts from an exported agent's V and M without regenerating any data:
experiments/carracing_from_agent.sh.

One process:      python -m scripts.train_controller --run-dir DIR
N MPI ranks:      mpiexec -n N python -m scripts.train_controller --run-dir DIR
Several machines: mpiexec -f hosts -n N python -m scripts.train_controller --run-dir DIR
                  (DIR on a shared file system). Rerunning resumes from the last
                  finished generation; --force starts over.
"""

import sys
from pathlib import Path

from scripts import stage

STAGE = "train_controller"


def add_arguments(parser):
    parser.add_argument(
        "--init-from",
        metavar="DIR[:KIND]",
        help="start CMA-ES from run DIR's saved controller KIND (mean, best or selected; default mean); sets controller.init_from",
    )


def init_from_value(text: str) -> str:
    """--init-from DIR[:KIND] as controller.init_from: 'ABSOLUTE_DIR:KIND'."""
    from controller.store import PARAMS_NAMES

    folder, _, kind = text.rpartition(":")
    if not folder or kind not in PARAMS_NAMES:  # no kind given (or a ':' inside the path)
        folder, kind = text, "mean"
    return f"{Path(folder).resolve()}:{kind}"


def starting_point(config, controller):
    """CMA-ES's x0 from controller.init_from ('ABSOLUTE_DIR:KIND'), checked against this run's
    controller; None for ''. Returns (params, the file, its generation)."""
    from common.errors import ArtifactError
    from controller.store import PARAMS_NAMES, load_params, params_path

    value = config.controller.init_from
    if not value:
        return None
    folder, _, kind = value.rpartition(":")
    if kind not in PARAMS_NAMES or not Path(folder).is_absolute():
        raise stage.StageError(
            f"controller.init_from={value!r}: expected 'DIR:KIND' with an absolute DIR and KIND one of {', '.join(PARAMS_NAMES)}; "
            f"--init-from DIR[:KIND] writes it so"
        )
    path = params_path(folder, kind)
    try:
        params, extras = load_params(path, controller, fix_hint=f"--init-from names a run whose train_controller saved {path.name}")
    except ArtifactError as error:
        raise ArtifactError(f"controller.init_from (--init-from): {error}") from None
    return params, path, extras.get("generation")


def main(argv=None):
    stage.limit_threads(1)  # one thread per rank, before TensorFlow starts
    from controller.parallel import RankError, Workers, abort_on_error

    workers = Workers()
    try:
        with abort_on_error(workers):
            return _train(argv, workers)
    except RankError as error:
        # raised alike on every rank: rank 0 reports it, every rank exits with the same status
        status = 2 if error.user_error else 1
        if workers.is_root:
            print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(status)


def check_settings(settings) -> None:
    """The ranking settings a run could not train with (controller/noise.py)."""
    if not settings.adaptive_rollouts:
        return
    least, most = settings.rollouts_per_candidate, settings.max_rollouts_per_candidate
    if least < 2 or least % 2:
        raise stage.StageError(
            f"controller.adaptive_rollouts needs an even controller.rollouts_per_candidate >= 2 (its episodes are split in two halves), "
            f"got {least}: e.g. --set controller.rollouts_per_candidate=2"
        )
    if most < least:
        raise stage.StageError(
            f"controller.max_rollouts_per_candidate={most} is below controller.rollouts_per_candidate={least}: raise it, e.g. to {4 * least}"
        )
    if not 0 < settings.rank_reliability < 1:  # also refuses NaN
        raise stage.StageError(f"controller.rank_reliability={settings.rank_reliability}: expected a correlation strictly between 0 and 1, e.g. 0.8")


def validate(invocation):
    """Before done.json is cleared or anything written: the ranking settings, M's weights, the
    first-frame table and M's calibration for the sampled done rule (dream mode) or V's encoder
    (real mode), and the CMA-ES state a resume would load (its validation set the same) or, for a
    new start, the controller --init-from names all fit the config. Returns (x0 params, its file,
    its generation) or None."""
    from controller.es import EvolutionStrategy
    from controller.policy import controller_from_config
    from controller.train import STATE_NAME
    from rnn.calibration import done_rule
    from rnn.store import load_mdn_rnn
    from vae.series import read_initial_z
    from vae.store import load_part

    config, run = invocation.config, invocation.layout
    settings, controller = config.controller, controller_from_config(config)
    check_settings(settings)
    load_mdn_rnn(run.rnn, config)
    if settings.mode == "dream":
        read_initial_z(run.series, config.vae.z_size)
        done_rule(config, run.rnn)  # controller.done_rule=sampled: rnn/calibration.json is there and fits M
    else:
        load_part(run.vae, "encoder", config.vae)
    state_path = run.controller / STATE_NAME
    if invocation.arguments.force or not state_path.exists():
        return starting_point(config, controller)
    selected = EvolutionStrategy.load(state_path, controller.num_params).selected
    if selected is not None and settings.eval_set == "validation" and selected["episodes"] != settings.eval_rollouts:
        raise stage.StageError(
            f"controller.eval_rollouts={settings.eval_rollouts}: this run's validation set is {selected['episodes']} episodes "
            f"(its selected mean, generation {selected['generation']}, scored {selected['score']:.2f} on them), and scores on another set "
            f"cannot pick between means. Keep --set controller.eval_rollouts={selected['episodes']}, or start over with --force"
        )
    return None


def parse(argv):
    """The invocation; --init-from becomes controller.init_from before the config is checked against the run's locks."""
    arguments = stage.parse_arguments(STAGE, __doc__, argv, add_arguments=add_arguments)
    if arguments.init_from is not None:
        arguments.assignments.append(f"controller.init_from={init_from_value(arguments.init_from)}")
    return stage.open_run(STAGE, arguments)


def _train(argv, workers):
    # every rank parses and reads the same config; only rank 0 writes (in stage.begin)
    invocation = workers.guarded(lambda: parse(argv))
    config, run_dir = invocation.config, invocation.run_dir
    run = invocation.layout
    from controller.train import train_controller  # TensorFlow loads after parsing: --help stays fast

    stage.configure_devices(config.controller.mode)  # before validation builds M

    def prepare():
        if workers.is_root:  # the one writer: takes the lock, validates every input, then writes
            start = stage.begin(invocation, validate=validate)
            stage.clear_done(run_dir, STAGE)  # unfinished until marked done again: a kill leaves no stale marker
            if start is not None:
                print(f"train_controller: CMA-ES starts from {start[1]} (generation {start[2]})")
                return start[0]
        else:
            stage.begin(invocation, write=False)
        return None

    x0 = workers.guarded(prepare)
    summary = train_controller(config, run_dir, workers, initial_mean=x0)
    if workers.is_root:
        stage.mark_done(run_dir, STAGE, config, summary=summary)
        print(f"train_controller: done ({summary.get('generations')} generations); controller in {run.controller}")
    workers.barrier()


if __name__ == "__main__":
    stage.run_main(main)
