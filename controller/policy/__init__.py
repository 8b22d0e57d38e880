"""C: the kinds of controller, by controller.kind (docs/design.md section 2).

A kind is one file here defining a Controller subclass (controller/policy/base.py: its parameter
blocks, its formula and its action) plus its line in KINDS; the agent, the dream, the store,
training, evaluation, fidelity and iterative training all go through the Controller interface
and flat parameter rows (J, N), never through a kind's matrices.
"""

from controller.policy.base import COMMON_FIELDS, Controller, ControllerShape, controller_features, feature_size
from controller.policy.linear import LinearController
from controller.policy.mlp import MlpController

KINDS: dict[str, type[Controller]] = {
    LinearController.kind: LinearController,  # the paper's
    MlpController.kind: MlpController,
}

__all__ = ["COMMON_FIELDS", "KINDS", "Controller", "ControllerShape", "controller_features", "feature_size", "make_controller", "controller_from_config"]


def make_controller(shape: ControllerShape) -> Controller:
    """The controller of shape.kind; ValueError naming the kinds for an unknown one."""
    if shape.kind not in KINDS:
        raise ValueError(f"controller.kind={shape.kind!r}: expected one of {', '.join(KINDS)}")
    return KINDS[shape.kind](shape)


def controller_from_config(config) -> Controller:
    """The run's controller (env, vae, rnn and controller sections of the resolved Config)."""
    return make_controller(ControllerShape.from_config(config))
