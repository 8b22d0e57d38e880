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


def configure_devices(mode: str) -> None:
    """GPUs and many ranks (docs/design.md section 6): in real mode each rank's step is dominated by
    the CPU-bound envs and its agent batch is small, so ranks keep off the GPU; in dream mode
    they share it (memory growth) instead of each grabbing all of its memory. Before
    TensorFlow builds anything."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return
    if mode == "real":
        tf.config.set_visible_devices([], "GPU")
    else:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)


def _train(argv, workers):
    def parse():
        return stage.parse(STAGE, __doc__, argv)

    # rank 0 resolves and saves DIR/config.json first; the other ranks then read the same config
    invocation = workers.guarded(lambda: parse() if workers.is_root else None)
    invocation = workers.guarded(lambda: invocation if workers.is_root else parse())
    config, run_dir = invocation.config, invocation.run_dir
    from controller.train import train_controller  # TensorFlow loads after parsing: --help stays fast

    def prepare():
        requires = ("train_rnn", "extract") + (("train_vae",) if config.controller.mode == "real" else ())
        stage.begin(invocation, requires, write=workers.is_root)
        if workers.is_root:
            stage.clear_done(run_dir, STAGE)  # unfinished until marked done again: a kill leaves no stale marker

    workers.guarded(prepare)
    configure_devices(config.controller.mode)
    summary = train_controller(config, run_dir, workers)
    if workers.is_root:
        stage.mark_done(run_dir, STAGE, config, summary=summary)
        print(f"train_controller: done ({summary.get('generations')} generations); controller in {run_dir / 'controller'}")
    workers.barrier()


if __name__ == "__main__":
    stage.run_main(main)
