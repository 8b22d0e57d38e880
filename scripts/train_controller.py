"""Train the controller C with CMA-ES (paper, sections 4.3 and 5).

controller.mode=real scores candidates in the real environment with V + M + C
(CarRacing, as the paper); controller.mode=dream scores them inside M's dream
at temperature controller.temperature (Doom, as the paper). Writes
DIR/controller/ (es_state.pkl, best.npz, mean.npz, metrics.jsonl, curve.png).

One process:      python -m scripts.train_controller --run-dir DIR
N MPI ranks:      mpiexec -n N python -m scripts.train_controller --run-dir DIR
Several machines: mpiexec -f hosts -n N python -m scripts.train_controller --run-dir DIR
                  (DIR on a shared file system). Rerunning resumes from the last
                  finished generation; --force starts over.
"""

import sys

from scripts import stage

STAGE = "train_controller"


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


def validate(invocation) -> None:
    """Before done.json is cleared or anything written: M's weights, the first-frame table and M's
    calibration for the sampled done rule (dream mode) or V's encoder (real mode), and the CMA-ES
    state a resume would load all fit the config."""
    from controller import linear
    from controller.es import EvolutionStrategy
    from controller.train import STATE_NAME
    from rnn.calibration import done_rule
    from rnn.store import load_mdn_rnn
    from vae.series import read_initial_z
    from vae.store import load_part

    config, run_dir = invocation.config, invocation.run_dir
    load_mdn_rnn(run_dir / "rnn", config)
    if config.controller.mode == "dream":
        read_initial_z(run_dir / "series", config.vae.z_size)
        done_rule(config, run_dir / "rnn")  # controller.done_rule=sampled: rnn/calibration.json is there and fits M
    else:
        load_part(run_dir / "vae", "encoder", config.vae.z_size)
    state_path = run_dir / "controller" / STATE_NAME
    if not invocation.arguments.force and state_path.exists():
        EvolutionStrategy.load(state_path, linear.ControllerShape.from_config(config).num_params)


def _train(argv, workers):
    # every rank parses and reads the same config; only rank 0 writes (in stage.begin)
    invocation = workers.guarded(lambda: stage.parse(STAGE, __doc__, argv))
    config, run_dir = invocation.config, invocation.run_dir
    from controller.train import train_controller  # TensorFlow loads after parsing: --help stays fast

    stage.configure_devices(config.controller.mode)  # before validation builds M

    def prepare():
        if workers.is_root:  # the one writer: takes the lock, validates every input, then writes
            stage.begin(invocation, validate=validate)
            stage.clear_done(run_dir, STAGE)  # unfinished until marked done again: a kill leaves no stale marker
        else:
            stage.begin(invocation, write=False)

    workers.guarded(prepare)
    summary = train_controller(config, run_dir, workers)
    if workers.is_root:
        stage.mark_done(run_dir, STAGE, config, summary=summary)
        print(f"train_controller: done ({summary.get('generations')} generations); controller in {run_dir / 'controller'}")
    workers.barrier()


if __name__ == "__main__":
    stage.run_main(main)
