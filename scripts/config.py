"""The resolved config: every section, the presets, and `section.key=value` overrides.

One source of truth for every hyperparameter: the sections are defined next to
the code that uses them (env/, vae/, rnn/, controller/, workflows/), and the presets below
hold the paper's values (docs/design.md section 4). `--help` prints every field.
"""

import dataclasses
import difflib
from typing import Any

from common.settings import describe
from controller.config import ControllerConfig, EvaluateConfig
from controller.policy import KINDS, controller_from_config
from env.config import EnvConfig, GenerateConfig
from env.spec import all_specs
from rnn.config import RnnConfig
from vae.config import VaeConfig
from workflows.config import IterateConfig

SECTIONS = {
    "env": EnvConfig,
    "generate": GenerateConfig,
    "vae": VaeConfig,
    "rnn": RnnConfig,
    "controller": ControllerConfig,
    "evaluate": EvaluateConfig,
    "iterate": IterateConfig,
}


@dataclasses.dataclass
class Config:
    preset: str
    env: EnvConfig
    generate: GenerateConfig
    vae: VaeConfig
    rnn: RnnConfig
    controller: ControllerConfig
    evaluate: EvaluateConfig
    iterate: IterateConfig

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Each preset lists only what differs from the section defaults (CarRacing's values).
_DOOM = {
    "env.name": "doom",
    "env.max_steps": 2100,  # paper, section 5: episodes are capped at 2100 steps
    "generate.policy": "hold",
    "generate.min_episode_steps": 100,
    "vae.z_size": 64,
    "rnn.hidden_size": 512,
    "rnn.restart_input": True,
    "rnn.predict_done": True,
    "rnn.sequence_length": 500,
    "rnn.learning_rate_decay": 0.99999,
    "rnn.epochs": 20,  # paper, section 4.4 (the authors' code: ~400)
    "controller.mode": "dream",
    "controller.use_cell_state": True,
    "controller.use_bias": False,
    "controller.num_generations": 200,
    "controller.envs_per_worker": 16,  # each ViZDoom env is an engine process
    "controller.eval_set": "validation",  # the mean scored on the same episodes each time, the best kept (selected.npz)
}

# CarRacing on one 2-core CPU in <= 8 hours (README, "CarRacing on a 2-core CPU"): the paper's
# architecture, losses and frames; only data and training length are cut, each for the reason given.
_CARRACING_CPU = {
    "generate.num_rollouts": 1000,  # paper 10,000; 1,000 full episodes (~1M frames) took ~50 min on 2 busy cores with the fast env
    "rnn.epochs": 20,  # 220 batches of 100 x 999 over the 1,000 episodes; M matters little for CarRacing (README)
    # CMA-ES: 64 episodes a generation instead of the paper's 1,024, split 64 candidates x 1 rollout,
    # which beat 16 x 4 in a measured comparison (README) and trained the README's agent
    "controller.population_size": 64,
    "controller.rollouts_per_candidate": 1,
    # ~150 s a generation on 2 cores (measured): ~4 h 25 min with the mean's four scores, what is left
    # of 8 hours after data, V, M (~2 h 45 min) and the score; the README's run went on to 125, no gain
    "controller.num_generations": 100,
    "controller.eval_set": "validation",  # the mean scored on the same tracks each time, the best kept (selected.npz)
}

# Smoke presets keep every architecture size of the real preset (so parameter
# counts and shapes are the paper's) and shrink only data and training length.
_SMOKE = {
    "generate.num_rollouts": 6,
    "vae.batch_size": 32,
    "vae.epochs": 8,  # ~200 steps: enough for the smoke grid to show frames, not grey
    "vae.shuffle_buffer": 500,
    "vae.validation_fraction": 0.2,
    "rnn.batch_size": 4,
    "rnn.sequence_length": 40,
    "rnn.epochs": 2,  # ~8 windows of 4 x 40 per epoch over the smoke series
    "controller.population_size": 6,
    "controller.rollouts_per_candidate": 2,
    "controller.num_generations": 3,
    "controller.eval_every": 2,
    "controller.eval_rollouts": 4,
    "controller.envs_per_worker": 4,
    "controller.max_dream_steps": 200,
    "evaluate.episodes": 3,
    "iterate.episodes_per_round": 4,
    "iterate.rnn_epochs": 1,
    "iterate.controller_generations": 2,
    "iterate.eval_episodes": 2,
}

# ViZDoom Health Gathering (env/games/healthgathering.py) with the paper's Doom settings: like
# TakeCover it is a 64x64 first-person view whose reward is +1 per step survived, so everything
# _DOOM sets carries over (V z 64, M 512 with its done head and restart input, C on [z, c, h]
# scored in the dream at tau 1.15, 2100-step episodes: the cfg's own timeout is 2100 tics).
_HEALTHGATHERING = {
    **_DOOM,
    "env.name": "healthgathering",
    # The random policy never dies before step 384 (the acid alone kills at 384): the 100-step
    # cut TakeCover needs, for players killed at once by a fireball, would drop nothing.
    "generate.min_episode_steps": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "carracing": {},
    "doom": _DOOM,
    "healthgathering": _HEALTHGATHERING,
    "carracing-cpu": _CARRACING_CPU,
    "carracing-smoke": {**_SMOKE, "env.max_steps": 60, "generate.num_rollouts": 4},
    "doom-smoke": {**_DOOM, **_SMOKE, "env.max_steps": 200, "generate.min_episode_steps": 20},
    # doom-smoke's sizes; episodes of up to 400 steps so that some end in a death (none before 384),
    # which M's done head and the dream need, and 3 of them so the frames stay as few as doom-smoke's.
    "healthgathering-smoke": {**_HEALTHGATHERING, **_SMOKE, "env.max_steps": 400, "generate.num_rollouts": 3},
}


# Fields an earlier version wrote to config.json that no longer exist, with the reason. A run's
# config.json holding them is still read (the field is dropped, with a note); anywhere else an
# unknown field is an error.
RETIRED_FIELDS = {
    "rnn.num_steps": "M trains for rnn.epochs passes over its series instead (docs/design.md section 5 item 11)",
    "env.frame_size": "V's frames are always 64x64 RGB (env/frames.py), the only size it ever allowed",
}


# Fields added after runs had been made, with the value that keeps such a run as it was: a run's
# config.json without the field reads it as this value, not as its preset's (which may have
# changed since); a new run writes every field to its config.json.
ADDED_FIELDS = {
    "controller.shared_episodes": False,
    "controller.adaptive_rollouts": False,
    "controller.eval_set": "fresh",
    "controller.init_from": "",
}


def drop_retired(sections: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Stored section values without the retired fields, and one note per field dropped."""
    kept, notes = {}, []
    for section, values in sections.items():
        kept[section] = {}
        for name, value in values.items():
            key = f"{section}.{name}"
            if key in RETIRED_FIELDS:
                notes.append(f"{key}={value!r} is no longer a setting and is ignored: {RETIRED_FIELDS[key]}")
            else:
                kept[section][name] = value
    return kept, notes


def parse_value(key: str, text: str, default: Any) -> Any:
    """Convert the text of `--set key=text` to the type of the field's default."""
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"--set {key}={text}: expected true or false")
    for kind in (int, float):
        if isinstance(default, kind):
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"--set {key}={text}: expected a number of type {kind.__name__}") from None
    return text


def _field_default(section: str, name: str) -> Any:
    for field in dataclasses.fields(SECTIONS[section]):
        if field.name == name:
            return field.default if field.default is not dataclasses.MISSING else field.default_factory()
    raise KeyError(name)


def _closest(name: str, names: list[str], prefix: str = "") -> str:
    """' (did you mean 'PREFIX+X'?)' for the one of `names` nearest a misspelt `name`, else ''."""
    match = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {prefix + match[0]!r}?)" if match else ""


def split_key(key: str) -> tuple[str, str]:
    """'vae.z_size' -> ('vae', 'z_size'), or an error naming the closest match and listing what exists."""
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ValueError(f"unknown config section {section!r} in {key!r}{_closest(section, list(SECTIONS))}; sections: {', '.join(SECTIONS)}")
    names = [field.name for field in dataclasses.fields(SECTIONS[section])]
    if name not in names:
        raise ValueError(f"unknown config field {key!r}{_closest(name, names, f'{section}.')}; {section} has: {', '.join(names)}")
    return section, name


def build(preset: str, values: dict[str, dict[str, Any]] | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """A Config from a preset, then stored section values (a run's config.json: ADDED_FIELDS it lacks
    take the value it was made with), then overrides ('section.key' -> value)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    merged: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for key, value in PRESETS[preset].items():
        section, name = split_key(key)
        merged[section][name] = value
    if values is not None:  # a run's stored config
        for key, value in ADDED_FIELDS.items():
            section, name = split_key(key)
            if name not in values.get(section, {}):
                merged[section][name] = value
    for section, section_values in (values or {}).items():
        if section not in SECTIONS:
            raise ValueError(f"unknown config section {section!r}")
        for name, value in section_values.items():
            split_key(f"{section}.{name}")
            merged[section][name] = value
    for key, value in (overrides or {}).items():
        section, name = split_key(key)
        merged[section][name] = value
    config = Config(preset=preset, **{section: SECTIONS[section](**merged[section]) for section in SECTIONS})
    validate(config)
    return config


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """['vae.z_size=64', ...] -> {'vae.z_size': 64, ...}, typed like each field's default."""
    overrides = {}
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator:
            raise ValueError(f"--set {assignment!r}: expected section.key=value, e.g. --set vae.epochs=10")
        try:
            section, name = split_key(key.strip())
        except ValueError as error:
            raise ValueError(f"--set {assignment}: {error}") from None
        overrides[f"{section}.{name}"] = parse_value(key, text, _field_default(section, name))
    return overrides


def validate(config: Config) -> None:
    """Values that no stage could run with, refused before anything is computed."""
    specs = all_specs()
    choices = {
        "env.name": (config.env.name, tuple(specs)),
        # every game's fields with a fixed set of values (env.carracing_renderer, ...), whichever game runs
        **{f"env.{name}": (getattr(config.env, name), allowed) for spec in specs.values() for name, allowed in spec.setting_choices.items()},
        "generate.policy": (config.generate.policy, ("brownian", "hold")),
        "vae.kind": (config.vae.kind, ("vae", "vaegan")),
        "controller.kind": (config.controller.kind, tuple(KINDS)),
        "controller.mode": (config.controller.mode, ("real", "dream")),
        "controller.eval_set": (config.controller.eval_set, ("fresh", "validation")),
        "controller.done_rule": (config.controller.done_rule, ("threshold", "sampled")),
        "evaluate.params": (config.evaluate.params, ("best", "mean", "selected")),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"{key}={value!r}: expected one of {', '.join(allowed)}")
    controller_from_config(config)  # the kind's own sizes, e.g. controller.hidden_size >= 1 for mlp
    if config.controller.mode == "dream" and not config.rnn.predict_done:
        raise ValueError("controller.mode=dream needs rnn.predict_done=true: the dream ends an episode on M's done logit")
    if config.controller.mode == "dream" and not config.env.spec.dream_trainable and not config.rnn.predict_reward:
        raise ValueError(
            f"controller.mode=dream: {config.env.name}'s reward is not +1 per step survived, the only reward a dream without M's reward head "
            "gives; use controller.mode=real, or rnn.predict_reward=true"
        )


def help_text() -> str:
    lines = ["config fields (override with --set section.key=value):"]
    for section, section_class in SECTIONS.items():
        lines.extend(describe(section, section_class))
    lines.append("presets: " + ", ".join(PRESETS))
    return "\n".join(lines)
