"""C with one hidden layer: a = tanh(W2 tanh(W1 f + b1) + b2), f = [z, h] or [z, c, h].

The hidden layer (controller.hidden_size units, tanh) always has its bias b1; the output has b2
only if controller.use_bias, as the linear controller has b (Doom: none).

Flat layout: W1 (F, H) row-major, b1 (H,), W2 (H, A) row-major, then b2 (A,) if use_bias:
F*H + H + H*A (+ A) parameters. With controller.hidden_size 8: CarRacing (F 288, A 3)
288*8 + 8 + 8*3 + 3 = 2,339; Doom (F 1,088, A 1, no b2) 1,088*8 + 8 + 8 = 8,720.
CMA-ES keeps an N x N covariance (controller/es.py), so its memory and its saved state grow with N^2.
"""

from controller.policy.base import Controller


class MlpController(Controller):
    kind = "mlp"
    own_fields = ("controller_hidden_size",)

    def __init__(self, shape):
        super().__init__(shape)
        if shape.controller_hidden_size < 1:
            raise ValueError(f"controller.hidden_size={shape.controller_hidden_size}: the mlp controller needs at least 1 hidden unit")
        self.layer_size = shape.controller_hidden_size

    def blocks(self) -> list[tuple[int, ...]]:
        layers = [(self.feature_size, self.layer_size), (self.layer_size,), (self.layer_size, self.action_size)]
        return [*layers, (self.action_size,)] if self.shape.use_bias else layers

    def formula(self) -> str:
        return f"tanh(W2 tanh(W1 {self.inputs()} + b1){' + b2' if self.shape.use_bias else ''}), {self.layer_size} hidden units"

    def act_on_blocks(self, features, blocks: list):
        import tensorflow as tf

        hidden = tf.tanh(tf.einsum("bf,bfh->bh", features, blocks[0]) + blocks[1])
        actions = tf.einsum("bh,bha->ba", hidden, blocks[2])
        return tf.tanh(actions + blocks[3] if self.shape.use_bias else actions)
