"""The training loop V and M share: epochs of batches, exact resume, checkpoints, logs.

A model brings a `Trainer` (its batches, its compiled step, its hooks); `run_training`
owns everything else, the same way for every model:

- progress counters: step (batches trained in all), epoch (epochs completed),
  step_in_epoch (batches trained in the current epoch), metrics_records (lines
  of metrics.jsonl written up to that moment);
- the checkpoint OUTPUT/checkpoints/last.npz (common/checkpoint.py): model and
  optimizer state, the counters, and the state the step carries from batch to
  batch. It is written every `checkpoint_every_minutes`, at every epoch end, when
  training stops, and on Ctrl-C; a rerun restores it and asks the batch source for
  the current epoch from step_in_epoch on, so batches must be a pure function of
  (epoch, step_in_epoch) and resuming replays exactly what an uninterrupted run does;
- OUTPUT/metrics.jsonl, cut back on resume to the `metrics_records` lines the
  checkpoint counted (lines written after it come again), and TensorBoard scalars
  under OUTPUT/tensorboard/;
- a progress bar per epoch;
- Ctrl-C: the first one stops at the next point where the counters match the
  weights (after a step, or after an epoch's end), saves and raises
  KeyboardInterrupt; a second one stops at once, keeping the last checkpoint;
- a non-finite loss or gradient: the compiled step does not apply the update
  (`apply_if_finite`) and returns False; the loop raises TrainingDiverged before
  anything is saved, so the checkpoint and weights on disk stay the last good ones.
"""

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import tensorflow as tf
from tqdm import tqdm

from common.checkpoint import read_checkpoint, save_checkpoint
from common.errors import ArtifactError, UserError
from common.files import append_jsonl, read_jsonl, write_jsonl
from common.layout import METRICS_NAME, TENSORBOARD_FOLDER, checkpoint_path
from common.summaries import write_scalars


class TrainingDiverged(UserError):
    """A non-finite loss or gradient: training stopped before applying it, nothing was saved."""


@dataclasses.dataclass(frozen=True)
class Progress:
    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    metrics_records: int = 0


@dataclasses.dataclass
class Record:
    """What a hook asks the loop to log: a metrics.jsonl line (None: no line), TensorBoard
    scalars {tag: value} at the current step, and a terminal line."""

    metrics: dict | None = None
    scalars: dict[str, float] = dataclasses.field(default_factory=dict)
    line: str | None = None


@dataclasses.dataclass
class Trainer:
    """What a model brings to `run_training`.

    batches(epoch, step_in_epoch): the batches of that epoch from that position on.
    step(batch, state) -> (results, finite, state): the compiled training step;
        results are the running metrics (a dict holding "loss"), finite a boolean
        tensor (False: the update was not applied), state a dict of arrays carried to
        the next batch of the epoch and kept in the checkpoint ({} when none).
    initial_state(epoch): the state at the start of an epoch.
    log(progress, results): called every `log_every` steps and after the last one.
    end_epoch(progress, complete): called after an epoch ends or training stops inside one.
    describe_batch(progress, batch): the files a batch came from, for the error on a
        non-finite loss ("" when the data cannot tell).
    """

    name: str
    model: Any  # a keras.Model with optimizer_targets() (common/checkpoint.py)
    batches: Callable[[int, int], Iterable]
    step: Callable[[Any, dict], tuple[dict, Any, dict]]
    steps_per_epoch: int | Callable[[int], int] | None = None  # batches per epoch, or a function of the epoch; None: one endless epoch
    epochs: int | None = None  # stop after this many epochs (None: no limit)
    max_steps: int | None = None  # stop after this many steps, even mid-epoch (None: no limit)
    log_every: int = 10
    initial_state: Callable[[int], dict] = lambda epoch: {}
    log: Callable[[Progress, dict], Record | None] = lambda progress, results: None
    end_epoch: Callable[[Progress, bool], Record | None] = lambda progress, complete: None
    describe_batch: Callable[[Progress, Any], str] = lambda progress, batch: ""
    diverged_hint: str = ""

    def epoch_length(self, epoch: int) -> int | None:
        return self.steps_per_epoch(epoch) if callable(self.steps_per_epoch) else self.steps_per_epoch

    def finished(self, progress: Progress) -> bool:
        return (self.epochs is not None and progress.epoch >= self.epochs) or (self.max_steps is not None and progress.step >= self.max_steps)


def apply_if_finite(losses: list, updates: list[tuple]) -> tf.Tensor:
    """Inside a compiled step: apply every (optimizer, gradients, variables) update only if
    every loss and every gradient element is finite; returns that flag (a bool tensor).

    Elementwise is_finite, not a global norm: a norm overflows to inf for finite gradients above ~1.8e19.
    """
    checks = [tf.reduce_all(tf.math.is_finite(loss)) for loss in losses]
    checks += [tf.reduce_all(tf.math.is_finite(gradient)) for _, gradients, _ in updates for gradient in gradients if gradient is not None]
    finite = tf.reduce_all(tf.stack(checks))

    def apply():
        for optimizer, gradients, variables in updates:
            optimizer.apply(gradients, variables)
        return tf.constant(True)

    return tf.cond(finite, apply, lambda: tf.constant(False))


class _Interrupts:
    """Turns the first Ctrl-C into a flag the loop checks at consistent points; the second
    one raises KeyboardInterrupt at once. Only in the main thread (where Python delivers signals)."""

    def __init__(self, log: Callable[[str], None]):
        self.requested = False
        self.log = log
        self.installed = False
        self.previous = signal.default_int_handler

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self.previous)
        self.log("Ctrl-C: stopping after this step and saving a checkpoint (Ctrl-C again stops at once, keeping the last checkpoint)")

    def __enter__(self):
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            previous = signal.signal(signal.SIGINT, self._handle)
            self.previous = previous if previous is not None else signal.default_int_handler
        return self

    def __exit__(self, *exception):
        if self.installed and not self.requested:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _restore(trainer: Trainer, output_dir: Path, log: Callable[[str], None]) -> tuple[Progress, dict, bool]:
    """(progress, carried state, whether a checkpoint was read), or a fresh start. The loop
    starts an epoch's state itself (initial_state), so only a mid-epoch resume uses the state read."""
    path = checkpoint_path(output_dir)
    if not path.exists():
        return Progress(), {}, False
    counters, state = read_checkpoint(path, trainer.model)
    missing = [field.name for field in dataclasses.fields(Progress) if field.name not in counters]
    if missing:
        raise ArtifactError(f"{path}: a checkpoint without the counters {missing} (an older version's); rerun the stage with --force to start over")
    progress = Progress(**{field.name: counters[field.name] for field in dataclasses.fields(Progress)})
    log(f"resuming from {path}: epoch {progress.epoch + 1}, step {progress.step}")
    return progress, state, True


def run_training(
    trainer: Trainer, output_dir: str | Path, checkpoint_every_minutes: float, log: Callable[[str], None] = print, show_progress: bool = True
) -> Progress:
    """Train (or resume training) until trainer.finished; returns the final progress.

    Raises TrainingDiverged at a non-finite loss or gradient, KeyboardInterrupt after
    saving on Ctrl-C; any other error propagates without a save.
    """
    output_dir = Path(output_dir)
    checkpoint = checkpoint_path(output_dir)
    progress, state, restored = _restore(trainer, output_dir, log)
    saved = {"step": progress.step if restored else None, "time": time.monotonic()}
    metrics_path = output_dir / METRICS_NAME
    write_jsonl(metrics_path, read_jsonl(metrics_path)[: progress.metrics_records])

    def save() -> None:
        save_checkpoint(checkpoint, trainer.model, dataclasses.asdict(progress), state)
        saved.update(step=progress.step, time=time.monotonic())

    def write(record: Record | None) -> None:
        nonlocal progress
        if record is None:
            return
        if record.metrics is not None:
            append_jsonl(metrics_path, record.metrics)
            progress = dataclasses.replace(progress, metrics_records=progress.metrics_records + 1)
        if record.scalars:
            write_scalars(writer, record.scalars, progress.step)
        if record.line:
            log(record.line)

    def diverged(batch) -> TrainingDiverged:
        files = trainer.describe_batch(progress, batch)
        where = f"epoch {progress.epoch + 1}, batch {progress.step_in_epoch + 1} of the epoch" + (f", {files}" if files else "")
        kept = f"{checkpoint} (step {saved['step']}) is the last good checkpoint" if saved["step"] is not None else "no checkpoint was written"
        return TrainingDiverged(
            f"{trainer.name}: the loss or a gradient is not finite at step {progress.step + 1} ({where}). The update was not applied "
            f"and nothing was saved: {kept}, final weights untouched. {trainer.diverged_hint}".rstrip()
        )

    writer = tf.summary.create_file_writer(str(output_dir / TENSORBOARD_FOLDER))
    with _Interrupts(log) as interrupts:
        try:
            while not trainer.finished(progress):
                if progress.step_in_epoch == 0:
                    state = trainer.initial_state(progress.epoch)
                # Running means cover the steps since this epoch (or this resume) began.
                for tracker in trainer.model.metrics:
                    tracker.reset_state()
                epoch_length = trainer.epoch_length(progress.epoch)
                if epoch_length is None:
                    bar_options = {"desc": trainer.name, "total": trainer.max_steps, "initial": progress.step}
                else:
                    of_epochs = f"/{trainer.epochs}" if trainer.epochs is not None else ""
                    bar_options = {"desc": f"{trainer.name} epoch {progress.epoch + 1}{of_epochs}", "total": epoch_length}
                    bar_options["initial"] = progress.step_in_epoch
                # An epoch whose batches were all trained before a stop (a checkpoint of an older version) goes to its end.
                epoch_trained = epoch_length is not None and progress.step_in_epoch >= epoch_length
                with tqdm(**bar_options, unit="batch", disable=not show_progress or epoch_trained, leave=False) as bar:
                    for batch in () if epoch_trained else trainer.batches(progress.epoch, progress.step_in_epoch):
                        results, finite, new_state = trainer.step(batch, state)
                        if not bool(finite):
                            raise diverged(batch)
                        state = new_state
                        progress = dataclasses.replace(progress, step=progress.step + 1, step_in_epoch=progress.step_in_epoch + 1)
                        bar.update(1)
                        epoch_done = epoch_length is not None and progress.step_in_epoch >= epoch_length
                        stop = epoch_done or trainer.finished(progress)
                        if progress.step % trainer.log_every == 0 or stop:
                            bar.set_postfix(loss=f"{float(results['loss']):.4g}")
                            write(trainer.log(progress, results))
                        if stop:
                            break
                        if interrupts.requested:
                            save()
                            raise KeyboardInterrupt
                        if time.monotonic() - saved["time"] > 60 * checkpoint_every_minutes:
                            save()
                    else:
                        if not epoch_trained:
                            expected = epoch_length or "no end"
                            raise RuntimeError(
                                f"{trainer.name}: epoch {progress.epoch + 1} ran out of batches at {progress.step_in_epoch}, expected {expected}"
                            )
                complete = epoch_length is not None and progress.step_in_epoch >= epoch_length
                write(trainer.end_epoch(progress, complete))
                if complete:
                    progress = dataclasses.replace(progress, epoch=progress.epoch + 1, step_in_epoch=0)
                save()
                if interrupts.requested and not trainer.finished(progress):
                    raise KeyboardInterrupt
        finally:
            writer.close()
    return progress
