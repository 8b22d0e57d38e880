"""Counter-based random numbers: every number drawn for a row is a pure function of that row's
key (seed, step, stream), never of its place in the batch.

So a batch can be split across MPI ranks, permuted, or compacted (finished dream episodes
dropped) without changing any row's draws (rnn/dream.py, rnn/mdn.py `sample`).
"""

import tensorflow as tf

# Streams keep the draws made for different purposes independent.
STREAM_START_INDEX = 1  # which real first frame a dream episode starts from
STREAM_START_Z = 2  # z sampled from that frame's (mu, sigma)
STREAM_MIXTURE = 3  # the mixture samples of every step
STREAM_DONE = 4  # the sampled done rule's draw of every step (rnn/dream.py, DoneRule)


def _hash(x):
    """PCG-style 32-bit integer hash (O'Neill 2014 output permutation), elementwise on uint32."""
    state = x * tf.constant(747796405, tf.uint32) + tf.constant(2891336453, tf.uint32)
    shift = tf.bitwise.right_shift(state, 28) + tf.constant(4, tf.uint32)
    word = tf.bitwise.bitwise_xor(tf.bitwise.right_shift(state, shift), state) * tf.constant(277803737, tf.uint32)
    return tf.bitwise.bitwise_xor(tf.bitwise.right_shift(word, 22), word)


def row_keys(seeds, step, stream: int):
    """Keys (B,) uint32 from per-row seeds (B,) int64, a step number and a stream.

    The 64-bit seed is folded in as its two 32-bit halves, then the step, then the stream.
    """
    seeds = tf.cast(seeds, tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(seeds, 0xFFFFFFFF), tf.uint32)
    high = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(seeds, 32), 0xFFFFFFFF), tf.uint32)
    step = tf.cast(tf.bitwise.bitwise_and(tf.cast(step, tf.int64), 0xFFFFFFFF), tf.uint32)
    key = _hash(low)
    key = _hash(tf.bitwise.bitwise_xor(key, high))
    key = _hash(tf.bitwise.bitwise_xor(key, step))
    return _hash(tf.bitwise.bitwise_xor(key, tf.constant(stream, tf.uint32)))


def uniform(keys, count: int):
    """(B, count) float32 uniforms in (0, 1), number j of row b a hash of (keys[b], j)."""
    counters = tf.cast(tf.range(count, dtype=tf.int32), tf.uint32)
    bits = _hash(tf.bitwise.bitwise_xor(keys[:, None], _hash(counters + tf.constant(0x9E3779B9, tf.uint32))[None, :]))
    # 24 high bits -> (k + 0.5) / 2^24: strictly inside (0, 1), exact in float32.
    return (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) * (1.0 / 16777216.0)


def normal(keys, count: int):
    """(B, count) standard normal draws by the inverse CDF of `uniform`."""
    return tf.math.ndtri(uniform(keys, count))
