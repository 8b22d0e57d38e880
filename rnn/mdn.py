"""The mixture density network of M (paper, section 3.2 and appendix A.2).

For every z dimension independently, M's head gives K mixture logits, K means
and K log standard deviations: P(z_{t+1} | a_t, z_t, h_t) is a product over
dimensions of 1-D Gaussian mixtures. Doom adds a done logit (did a_t end the
episode?), trained with a binary cross-entropy whose positives weigh
`done_weight` (authors' code: x10, deaths are rare); an optional reward head
is trained with a squared error.

Head layout (the contract shared with the dream and the controller):
  output[..., : Z * 3K] reshaped to (..., Z, 3K), then split along the last
  axis into logits (..., Z, K), means (..., Z, K), log_sigmas (..., Z, K);
  output[..., Z * 3K]      the done logit   (if predict_done)
  output[..., next index]  the reward       (if predict_reward)

Sampling with temperature tau (paper, section 4.4 / 5): logits / tau, sigma *
sqrt(tau), the component drawn independently for each z dimension. `sample`
is the one sampling function of the project. Its randomness is counter-based
(rnn/counter_random.py): every number drawn for a row is a hash of that row's
key (seed, step, stream), never of its position in the batch, so a batch can be
split (MPI ranks) or compacted (finished dream episodes) without changing any
row's draws.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from rnn.counter_random import uniform

tfd = tfp.distributions


def head_size(z_size: int, num_mixtures: int, predict_done: bool, predict_reward: bool) -> int:
    """Width of M's Dense head: 3K per z dimension (+1 done logit, +1 reward)."""
    return z_size * 3 * num_mixtures + int(predict_done) + int(predict_reward)


def split_head(output, z_size: int, num_mixtures: int, predict_done: bool, predict_reward: bool) -> dict:
    """Split M's head output (..., head_size) into the mixture parameters and the extra heads."""
    mixture_width = z_size * 3 * num_mixtures
    batch_shape = tf.shape(output)[:-1]
    mixture = tf.reshape(output[..., :mixture_width], tf.concat([batch_shape, [z_size, 3 * num_mixtures]], axis=0))
    logits, means, log_sigmas = tf.split(mixture, 3, axis=-1)
    index = mixture_width
    done_logit = reward = None
    if predict_done:
        done_logit = output[..., index]
        index += 1
    if predict_reward:
        reward = output[..., index]
    return {"logits": logits, "means": means, "log_sigmas": log_sigmas, "done_logit": done_logit, "reward": reward}


def mixture(logits, means, log_sigmas) -> tfd.Distribution:
    """The per-dimension Gaussian mixture M predicts (batch shape (..., Z)); the training loss's."""
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=logits),
        components_distribution=tfd.Normal(loc=means, scale=tf.exp(log_sigmas)),
    )


def z_loss(z_target, logits, means, log_sigmas, mask=None):
    """Negative log-likelihood of z_{t+1}, averaged over z dimensions and unmasked steps.

    -log sum_k pi_k N(z | mu_k, sigma_k), per dimension (the authors' loss).
    z_target (..., Z); mask (...,) 1 where the step has a next frame.
    """
    negative_log_likelihood = -mixture(logits, means, log_sigmas).log_prob(z_target)  # (..., Z)
    per_step = tf.reduce_mean(negative_log_likelihood, axis=-1)
    return _masked_mean(per_step, mask)


def done_loss(done_logit, done_target, done_weight: float, mask=None):
    """Binary cross-entropy of the done logit, positive examples weighted by done_weight.

    loss = -(w y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))), mean over unmasked steps.
    """
    labels = tf.cast(done_target, done_logit.dtype)
    per_step = tf.nn.weighted_cross_entropy_with_logits(labels=labels, logits=done_logit, pos_weight=done_weight)
    return _masked_mean(per_step, mask)


def reward_loss(predicted_reward, reward_target, mask=None):
    """Squared error of the reward head, mean over unmasked steps."""
    return _masked_mean(tf.square(predicted_reward - tf.cast(reward_target, predicted_reward.dtype)), mask)


def _masked_mean(values, mask):
    if mask is None:
        return tf.reduce_mean(values)
    mask = tf.cast(mask, values.dtype)
    return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def sample(logits, means, log_sigmas, tau, keys):
    """Draw z ~ mixture at temperature tau, the component chosen independently per dimension.

    logits, means, log_sigmas: (B, Z, K). tau: > 0 (tau -> 0 gives the most likely
    component's mean). keys: (B,) uint32 row keys from rnn.counter_random.row_keys (one per
    row, so a row's draw never depends on the other rows). Returns z (B, Z) float32.
    """
    parts = [tf.cast(part, tf.float32) for part in (logits, means, log_sigmas)]
    return _sample_packed(tf.concat(parts, axis=-1), tau, keys)


def sample_from_head(output, z_size: int, num_mixtures: int, tau, keys):
    """`sample` on M's raw head output (B, head_size): the same draws, without split_head's
    three (B, Z, K) copies (the dream's hot path)."""
    mixture_width = z_size * 3 * num_mixtures
    return _sample_packed(tf.reshape(output[:, :mixture_width], [tf.shape(output)[0], z_size, 3 * num_mixtures]), tau, keys)


def _sample_packed(mixture, tau, keys):
    """The sampler on the packed parameters (B, Z, 3K): K logits, K means, K log-sigmas."""
    slices = tf.unstack(mixture, axis=-1)  # 3K slices (B, Z)
    num_mixtures = len(slices) // 3
    batch_size, z_size = tf.shape(slices[0])[0], slices[0].shape[-1]
    tau = tf.cast(tau, tf.float32)
    draws = tf.reshape(uniform(keys, 2 * z_size), [batch_size, z_size, 2])
    logit_slices = [logit / tau for logit in slices[:num_mixtures]]
    mean_slices = slices[num_mixtures : 2 * num_mixtures]
    log_sigma_slices = slices[2 * num_mixtures :]
    # Component k by the inverse CDF of softmax(logits / tau): the first k whose cumulative
    # weight exceeds u * sum_k w_k (elementwise work only: K is small and static).
    peak = logit_slices[0]
    for logit in logit_slices[1:]:
        peak = tf.maximum(peak, logit)
    weights = [tf.exp(logit - peak) for logit in logit_slices]
    threshold = draws[..., 0] * tf.add_n(weights)
    cumulative = weights[0]
    mean, log_sigma = mean_slices[0], log_sigma_slices[0]
    for k in range(1, num_mixtures):
        beyond = cumulative < threshold  # the draw lies past components 0..k-1
        mean = tf.where(beyond, mean_slices[k], mean)
        log_sigma = tf.where(beyond, log_sigma_slices[k], log_sigma)
        cumulative = cumulative + weights[k]
    return mean + tf.exp(log_sigma) * tf.sqrt(tau) * tf.math.ndtri(draws[..., 1])
