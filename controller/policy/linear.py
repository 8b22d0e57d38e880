"""C, the linear controller (paper, section 3.3 and appendix A.3): a = tanh(W f + b).

CarRacing: f = [z, h], W (Z+H, 3), b (3,): (32+256)*3 + 3 = 867 parameters.
Doom:      f = [z, c, h], no bias, c the LSTM cell state: (64+512+512)*1 = 1,088.

Flat layout: W row-major (feature index outer, action index inner), then b if use_bias.
"""

from controller.policy.base import Controller


class LinearController(Controller):
    kind = "linear"

    def blocks(self) -> list[tuple[int, ...]]:
        weights = (self.feature_size, self.action_size)
        return [weights, (self.action_size,)] if self.shape.use_bias else [weights]

    def formula(self) -> str:
        return f"tanh(W {self.inputs()}{' + b' if self.shape.use_bias else ''})"

    def act_on_blocks(self, features, blocks: list):
        import tensorflow as tf

        actions = tf.einsum("bf,bfa->ba", features, blocks[0])
        return tf.tanh(actions + blocks[1] if self.shape.use_bias else actions)
