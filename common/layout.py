"""The run directory's layout (docs/design.md section 3): every stage's folder, the files in it, and
the command that remakes each stage. Code that opens a run's file asks a RunLayout for its path
instead of spelling `run_dir / "rnn"`.

Commands are written `python -m scripts.<stage> --run-dir DIR ...`. How a user started the
project decides what they should type instead of `python` (`./run.sh python` for run.sh's
environment): the entry point that prints a message chooses that (scripts/stage.py, with_launcher).
"""

import dataclasses
import re
from pathlib import Path

CONFIG_NAME = "config.json"
CHECKPOINTS_FOLDER = "checkpoints"
TENSORBOARD_FOLDER = "tensorboard"  # <folder>/tensorboard/: the training scalars of V, M and C
CHECKPOINT_NAME = "last.npz"  # the training checkpoint of V and M: <folder>/checkpoints/last.npz
METRICS_NAME = "metrics.jsonl"  # every trained part's training records: <folder>/metrics.jsonl
DONE_NAME = "done.json"
STARTED_NAME = "started.json"

# Each stage's folder in the run directory, by stage name (also the name of its entry point, scripts/<stage>.py).
FOLDERS = {
    "generate": "rollouts",
    "train_vae": "vae",
    "extract": "series",
    "train_rnn": "rnn",
    "train_controller": "controller",
    "evaluate": "eval",
    "evaluate_random": "eval_random",  # the random policy on evaluate's seeds
    "dream": "dream",
    "fidelity": "fidelity",
    "iterate": "iterate",
    "evaluate_validation": "eval_validation",  # the mean on the validation seeds 2^29 + k (evaluate --validation; each iterate round)
}

RECONSTRUCTIONS_NAME = "reconstructions.png"  # vae/, by check_vae
INITIAL_Z_NAME = "initial_z.npz"  # series/: the first-frame table dreams start from
SERIES_SOURCE_NAME = "source.json"  # series/: the fingerprint of the V that encoded them
RNN_WEIGHTS_NAME = "mdn_rnn.weights.h5"
CALIBRATION_NAME = "calibration.json"  # rnn/: the done head's calibration
BEST_NAME = "best.npz"
MEAN_NAME = "mean.npz"
SELECTED_NAME = "selected.npz"
ES_STATE_NAME = "es_state.pkl"
CURVE_NAME = "curve.png"
RETURNS_NAME = "returns.json"
SUMMARY_NAME = "summary.json"
HISTOGRAM_NAME = "histogram.png"
EPISODE_VIDEO_NAME = "episode.mp4"
PARTIAL_NAME = "partial.json"  # eval/: the episodes an unfinished evaluation has played
DREAM_VIDEO_NAME = "dream.mp4"
REAL_VIDEO_NAME = "real.mp4"
REPORT_NAME = "report.json"
PICTURE_NAME = "report.png"
PARTS_FOLDER = "parts"
ROUNDS_NAME = "rounds.json"  # iterate/: every finished round's scores
ROUNDS_SOURCE_NAME = "source.json"  # iterate/: fingerprints of the run's V, M and C the rounds started from
ROUND_PREFIX = "round_"  # iterate/round_<NNN>/: one round, laid out as a run directory


def vae_weights_name(part: str) -> str:
    """V's weights file of one part (encoder, decoder; discriminator for the VAE/GAN)."""
    return f"{part}.weights.h5"


def command(stage: str, run_dir: str | Path, *options: str) -> str:
    """The command that runs `stage` on run_dir, e.g. `python -m scripts.train_vae --run-dir DIR --force`."""
    return " ".join(["python", "-m", f"scripts.{stage}", "--run-dir", str(run_dir), *options])


# `python -m scripts.` not already preceded by another launcher's words
_COMMAND = re.compile(r"(?<![\w./-])(?<!run\.sh )python -m scripts\.")


def with_launcher(text: str, launcher: str) -> str:
    """text with every `python -m scripts.` command started by `launcher` instead (e.g. './run.sh python')."""
    return _COMMAND.sub(lambda match: f"{launcher} -m scripts.", text)


@dataclasses.dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory (an iterate round's folder has the same layout)."""

    run_dir: Path

    def __post_init__(self):
        object.__setattr__(self, "run_dir", Path(self.run_dir))

    def folder(self, stage: str) -> Path:
        return self.run_dir / FOLDERS[stage]

    def command(self, stage: str, *options: str) -> str:
        return command(stage, self.run_dir, *options)

    @property
    def config(self) -> Path:
        return self.run_dir / CONFIG_NAME

    @property
    def rollouts(self) -> Path:
        return self.folder("generate")

    @property
    def vae(self) -> Path:
        return self.folder("train_vae")

    @property
    def series(self) -> Path:
        return self.folder("extract")

    @property
    def rnn(self) -> Path:
        return self.folder("train_rnn")

    @property
    def controller(self) -> Path:
        return self.folder("train_controller")

    @property
    def eval(self) -> Path:
        return self.folder("evaluate")

    @property
    def dream(self) -> Path:
        return self.folder("dream")

    @property
    def fidelity(self) -> Path:
        return self.folder("fidelity")

    @property
    def iterate(self) -> Path:
        return self.folder("iterate")

    @property
    def eval_validation(self) -> Path:
        return self.folder("evaluate_validation")

    def vae_weights(self, part: str = "encoder") -> Path:
        return self.vae / vae_weights_name(part)

    @property
    def initial_z(self) -> Path:
        return self.series / INITIAL_Z_NAME

    @property
    def rnn_weights(self) -> Path:
        return self.rnn / RNN_WEIGHTS_NAME

    @property
    def calibration(self) -> Path:
        return self.rnn / CALIBRATION_NAME

    def controller_params(self, name: str = MEAN_NAME) -> Path:
        """controller/<name>: best.npz, mean.npz or selected.npz."""
        return self.controller / name

    @property
    def es_state(self) -> Path:
        return self.controller / ES_STATE_NAME

    def checkpoint(self, stage: str) -> Path:
        return checkpoint_path(self.folder(stage))

    def metrics(self, stage: str) -> Path:
        return self.folder(stage) / METRICS_NAME

    @property
    def rounds(self) -> Path:
        """iterate/rounds.json: every finished round's scores and the best round."""
        return self.iterate / ROUNDS_NAME

    @property
    def rounds_source(self) -> Path:
        return self.iterate / ROUNDS_SOURCE_NAME

    def round(self, number: int) -> "RunLayout":
        """Iterative training's round `number` (from 1): DIR/iterate/round_<number:03d>/, laid out as a run."""
        return RunLayout(self.iterate / f"{ROUND_PREFIX}{number:03d}")

    def round_numbers(self) -> list[int]:
        """The numbers of the round folders on disk, in order."""
        if not self.iterate.is_dir():
            return []
        return sorted(number for path in self.iterate.iterdir() if path.is_dir() and (number := round_number(path)) is not None)


def round_number(folder: str | Path) -> int | None:
    """The number of the iterate round whose folder `folder` is (RunLayout(DIR).round(number)), else None."""
    folder = Path(folder)
    suffix = folder.name.removeprefix(ROUND_PREFIX)
    if folder.parent.name != FOLDERS["iterate"] or not suffix.isdigit():
        return None
    number = int(suffix)
    return number if RunLayout(folder.parent.parent).round(number).run_dir.name == folder.name else None


def checkpoint_path(folder: str | Path) -> Path:
    """The training checkpoint of the part trained into `folder` (V's or M's)."""
    return Path(folder) / CHECKPOINTS_FOLDER / CHECKPOINT_NAME
