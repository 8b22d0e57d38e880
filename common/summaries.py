"""TensorBoard scalars for the training stages (V, M and C share this one writer)."""

import tensorflow as tf


def write_scalars(writer, values: dict[str, float], step: int, prefix: str = "") -> None:
    """Write each value as the scalar `prefix + name` at `step`, then flush."""
    with writer.as_default():
        for name, value in values.items():
            tf.summary.scalar(f"{prefix}{name}", float(value), step=step)
    writer.flush()
