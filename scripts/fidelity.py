"""How far the dream can be trusted: DIR/fidelity/report.json, report.png and a short summary.

Compares the dream with the real game (paper, section 5): episode lengths of the
data-collection policy and of the trained controller in both (same seeds, same
count), M's death probability against real deaths on held-out episodes, and M's
z loss on them next to its training loss. See workflows/fidelity.py for every field.
Needs a finished train_rnn with M's done head (Doom). The controller part plays
DIR/controller/mean.npz (or best.npz, selected.npz) with V in the real game; without that file
it is skipped, with a note. Without series episodes in DIR/series (an exported
agent, python -m scripts.export_agent) the two held-out parts are skipped, with a note.

Resumable: each part is saved to DIR/fidelity/parts/ when it finishes and a rerun
computes only the missing ones (or those whose inputs changed); --force recomputes all.

The dream episodes end by controller.done_rule, or by --done-rule (to compare the threshold and
the sampled rule on one run); the report shows M's calibration (rnn/calibration.json) either way.

  python -m scripts.fidelity --run-dir DIR [--episodes 100] [--params best|mean|selected] [--seed S] [--bins 10] [--last-steps 10]
                             [--done-rule threshold|sampled]
"""

import time
from pathlib import Path

from common.files import read_json
from common.layout import RunLayout
from scripts import stage

STAGE = "fidelity"


def add_arguments(parser):
    defaults = _defaults()
    parser.add_argument(
        "--episodes", type=int, default=defaults.episodes, help=f"episodes per policy in the dream and in the real game (default {defaults.episodes})"
    )
    parser.add_argument("--params", choices=("best", "mean", "selected"), default=defaults.params, help=f"which saved controller (default {defaults.params})")
    parser.add_argument("--seed", type=int, default=defaults.first_seed, help=f"episode k uses seed SEED + k (default {defaults.first_seed})")
    parser.add_argument("--bins", type=int, default=defaults.num_bins, help=f"probability bins of the calibration curve (default {defaults.num_bins})")
    parser.add_argument(
        "--last-steps",
        type=int,
        default=defaults.last_steps,
        help=f"k: the done logit's firing in the last k steps before a death (default {defaults.last_steps})",
    )
    parser.add_argument(
        "--done-rule", choices=("threshold", "sampled"), default=None, help="how the dream's episodes end (default: controller.done_rule of the config)"
    )


def _defaults():
    from workflows.fidelity import FidelitySettings

    return FidelitySettings()


def heldout_split(run_dir: Path, config) -> tuple[list[Path], bool]:
    """The series files M did not train on, and whether its finished training really left them out.

    M's own split of DIR/series (rnn.validation_fraction, rnn.seed); an M trained on every
    episode (fraction 0) falls back to a fraction of 0.1, then reported as not held out.
    No series episode at all (an exported agent ships only series/initial_z.npz): no paths, and
    the report skips the held-out parts with a note."""
    from rnn.fidelity import DEFAULT_HELDOUT_FRACTION, heldout_series
    from vae.series import list_series

    series_dir = RunLayout(run_dir).series
    if not list_series(series_dir):
        return [], False
    fraction = getattr(config.rnn, "validation_fraction", None)
    trained_with = read_json(stage.done_path(run_dir, "train_rnn")).get("locked", {}).get("rnn.validation_fraction", 0.0)
    paths = heldout_series(series_dir, DEFAULT_HELDOUT_FRACTION if not fraction else fraction, config.rnn.seed)
    return paths, bool(fraction) and trained_with == fraction


def main(argv=None):
    stage.limit_threads(1)
    invocation = stage.parse(STAGE, __doc__, argv, add_arguments=add_arguments)
    config, run_dir, arguments = invocation.config, invocation.run_dir, invocation.arguments
    for name, value in (("--episodes", arguments.episodes), ("--bins", arguments.bins), ("--last-steps", arguments.last_steps)):
        if value < 1:
            raise stage.StageError(f"{name} {value}: expected at least 1")
    from workflows import fidelity
    from workflows.fidelity_summary import summary_lines

    settings = fidelity.FidelitySettings(
        episodes=arguments.episodes,
        first_seed=arguments.seed,
        params=arguments.params,
        num_bins=arguments.bins,
        last_steps=arguments.last_steps,
        done_rule=arguments.done_rule,
    )
    # One writer at a time in DIR/fidelity, then every input checked before anything is written or deleted.
    stage.acquire_lock(run_dir / stage.LOCKS_FOLDER / f"{fidelity.FOLDER}.lock", STAGE, invocation.layout.fidelity)

    def validate(invocation):
        paths, from_training = heldout_split(run_dir, config)
        return fidelity.load_inputs(config, run_dir, settings, paths), from_training

    inputs, heldout_from_training = stage.begin(invocation, requires=("train_rnn",), validate=validate)
    started = time.perf_counter()
    report = fidelity.fidelity_report(config, run_dir, settings, inputs, heldout_from_training, force=arguments.force)
    for line in summary_lines(report, invocation.layout.fidelity):
        print(line)
    print(f"fidelity: {time.perf_counter() - started:.1f} s")
    return report


if __name__ == "__main__":
    stage.run_main(main)
