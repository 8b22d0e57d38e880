"""TensorBoard scalars without the tensorboard package.

tf.summary.scalar needs the `tensorboard` pip package (not a dependency of
tensorflow 2.21 and not pinned here); the core op tf.summary.write with the
"scalars" plugin metadata writes the same event records, which TensorBoard
reads as ordinary scalar curves.
"""

import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _scalar_metadata() -> summary_pb2.SummaryMetadata:
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    return metadata


_METADATA = _scalar_metadata()


def write_scalars(writer, values: dict[str, float], step: int, prefix: str = "") -> None:
    """Write each value as the scalar `prefix + name` at `step`."""
    with writer.as_default():
        for name, value in values.items():
            tf.summary.write(f"{prefix}{name}", tf.constant(float(value), tf.float32), step=step, metadata=_METADATA)
    writer.flush()
