"""Presets hold the paper's values (docs/design.md section 4); --set typing; locks; config.json reuse."""

import json

import pytest

from scripts import config as config_module
from scripts import stage


@pytest.fixture(scope="module")
def carracing():
    return config_module.build("carracing")


@pytest.fixture(scope="module")
def doom():
    return config_module.build("doom")


def mdn_rnn_parameters(config) -> int:
    """LSTM over [z, a (, restart)] + dense head of 3 K Z mixture outputs (+ done logit)."""
    inputs = config.vae.z_size + config.env.action_size + int(config.rnn.restart_input)
    hidden = config.rnn.hidden_size
    lstm = 4 * (inputs + hidden + 1) * hidden
    outputs = 3 * config.rnn.num_mixtures * config.vae.z_size + int(config.rnn.predict_done) + int(config.rnn.predict_reward)
    return lstm + (hidden + 1) * outputs


def controller_parameters(config) -> int:
    features = config.vae.z_size + config.rnn.hidden_size * (2 if config.controller.use_cell_state else 1)
    return features * config.env.action_size + (config.env.action_size if config.controller.use_bias else 0)


def test_shared_paper_values(carracing, doom):
    for config in (carracing, doom, config_module.build("healthgathering")):
        assert config.generate.num_rollouts == 10000
        assert config.vae.kl_tolerance == 0.5
        assert config.vae.learning_rate == 1e-4
        assert config.vae.batch_size == 100
        assert config.rnn.num_mixtures == 5
        assert config.rnn.learning_rate == 1e-3
        assert config.rnn.gradient_clip == 1.0
        assert config.controller.population_size == 64
        assert config.controller.rollouts_per_candidate == 16
        assert config.controller.sigma_init == 0.1
        assert config.controller.weight_decay == 0.01
        assert config.controller.temperature == 1.15
        assert config.evaluate.episodes == 100


def test_carracing_preset(carracing):
    assert carracing.env.name == "carracing" and carracing.env.action_size == 3
    assert carracing.env.max_steps == 1000
    assert carracing.generate.policy == "brownian" and carracing.generate.min_episode_steps == 0
    assert carracing.vae.z_size == 32
    assert carracing.rnn.hidden_size == 256 and carracing.rnn.sequence_length == 999 and carracing.rnn.epochs == 40
    assert not carracing.rnn.restart_input and not carracing.rnn.predict_done
    assert carracing.controller.mode == "real" and carracing.controller.use_bias and not carracing.controller.use_cell_state
    assert mdn_rnn_parameters(carracing) == 422_368  # paper
    assert controller_parameters(carracing) == 867  # paper


def test_doom_preset(doom):
    assert doom.env.name == "doom" and doom.env.action_size == 1
    assert doom.env.max_steps == 2100 and doom.env.doom_skill == 4 and doom.controller.max_dream_steps == 2100
    assert doom.generate.policy == "hold" and (doom.generate.hold_min_steps, doom.generate.hold_max_steps) == (1, 10)
    assert doom.generate.min_episode_steps == 100
    assert doom.vae.z_size == 64
    assert doom.rnn.hidden_size == 512 and doom.rnn.sequence_length == 500 and doom.rnn.epochs == 20
    assert doom.rnn.restart_input and doom.rnn.predict_done and doom.rnn.done_weight == 10.0
    assert doom.controller.mode == "dream" and doom.controller.use_cell_state and not doom.controller.use_bias
    assert mdn_rnn_parameters(doom) == 1_678_785  # paper
    assert controller_parameters(doom) == 1_088  # paper


def test_healthgathering_preset_is_dooms_with_its_own_game(doom):
    game = config_module.build("healthgathering")
    assert game.env.name == "healthgathering" and game.env.action_size == 2 and game.env.healthgathering_skill == 3
    assert game.env.max_steps == 2100 and game.generate.min_episode_steps == 0
    # every other value is TakeCover's (the paper's Doom settings)
    for section in ("generate", "vae", "rnn", "controller", "evaluate", "iterate"):
        differing = {key for key, value in vars(getattr(game, section)).items() if value != getattr(getattr(doom, section), key)}
        assert differing == ({"min_episode_steps"} if section == "generate" else set()), section
    # M takes 2 action inputs, C has 2 outputs
    assert mdn_rnn_parameters(game) == 1_678_785 + 4 * 512
    assert controller_parameters(game) == 2 * 1_088


def test_a_game_whose_reward_is_not_survival_cannot_be_scored_in_the_dream():
    with pytest.raises(ValueError, match=r"controller.mode=dream: carracing's reward is not \+1 per step survived"):
        config_module.build("carracing", overrides={"controller.mode": "dream", "rnn.predict_done": True})
    # with M's reward head the dream pays M's predicted reward instead
    assert config_module.build("carracing", overrides={"controller.mode": "dream", "rnn.predict_done": True, "rnn.predict_reward": True})


def test_carracing_cpu_preset_cuts_only_data_and_training_length(carracing):
    budget = config_module.build("carracing-cpu")
    # the paper's architecture, losses, frames and environment
    for section in ("env", "vae"):
        assert getattr(budget, section) == getattr(carracing, section)
    assert mdn_rnn_parameters(budget) == 422_368 and controller_parameters(budget) == 867
    assert budget.env.carracing_renderer == "fast"
    assert budget.controller.mode == "real" and budget.controller.sigma_init == 0.1 and budget.controller.weight_decay == 0.01
    # the cuts (README, "CarRacing on a 2-core CPU")
    assert budget.generate.num_rollouts == 1000 and budget.rnn.epochs == 20
    assert budget.controller.population_size * budget.controller.rollouts_per_candidate == 64
    # the split that won the measured comparison and trained the README's agent
    assert (budget.controller.population_size, budget.controller.rollouts_per_candidate) == (64, 1)
    assert budget.controller.num_generations == 100
    # each rank's half of a generation fits its lockstep batch
    assert budget.controller.envs_per_worker * 2 >= budget.controller.population_size * budget.controller.rollouts_per_candidate


def test_smoke_presets_keep_the_architecture(carracing, doom):
    for full, smoke in ((carracing, config_module.build("carracing-smoke")), (doom, config_module.build("doom-smoke"))):
        assert smoke.vae.z_size == full.vae.z_size and smoke.rnn.hidden_size == full.rnn.hidden_size
        assert smoke.env.name == full.env.name
        assert smoke.generate.num_rollouts < 10 and smoke.env.max_steps <= 200
    game, smoke = config_module.build("healthgathering"), config_module.build("healthgathering-smoke")
    assert (smoke.env.name, smoke.vae.z_size, smoke.rnn.hidden_size, smoke.controller.mode) == (game.env.name, 64, 512, "dream")
    # no more frames than doom-smoke: 3 episodes of up to 400 steps (some die at 384)
    assert smoke.generate.num_rollouts * smoke.env.max_steps <= 6 * 200 and smoke.env.max_steps > 384


def test_set_values_are_typed():
    overrides = config_module.parse_overrides(
        ["vae.z_size=16", "vae.learning_rate=3e-4", "rnn.predict_done=yes", "controller.use_bias=false", "env.name=doom", "env.doom_resolution=RES_320X240"]
    )
    assert overrides == {
        "vae.z_size": 16,
        "vae.learning_rate": 3e-4,
        "rnn.predict_done": True,
        "controller.use_bias": False,
        "env.name": "doom",
        "env.doom_resolution": "RES_320X240",
    }
    assert isinstance(overrides["vae.z_size"], int) and isinstance(overrides["vae.learning_rate"], float)
    assert config_module.build("carracing", overrides={"vae.z_size": 16}).vae.z_size == 16


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("vae.z_size=big", "expected a number of type int"),
        ("rnn.predict_done=maybe", "expected true or false"),
        ("vae.zsize=3", r"--set vae.zsize=3: unknown config field 'vae.zsize' \(did you mean 'vae.z_size'\?\); vae has: kind, z_size"),
        ("vea.z_size=3", r"--set vea.z_size=3: unknown config section 'vea' in 'vea.z_size' \(did you mean 'vae'\?\)"),
        ("vae.qqq=3", r"unknown config field 'vae.qqq'; vae has"),  # nothing close: no guess
        ("vae.z_size", "expected section.key=value"),
    ],
)
def test_bad_set_is_refused_with_its_reason(assignment, message):
    with pytest.raises(ValueError, match=message):
        config_module.parse_overrides([assignment])


def test_a_bad_set_on_a_new_run_blames_the_set_and_writes_nothing(tmp_path, capsys):
    """The key came from the command line: the message names the --set, the closest field and
    the section's fields, never the config.json that was not written; no run folder is made."""
    from scripts import generate

    run_dir = tmp_path / "badkey"
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(generate.main, ["--run-dir", str(run_dir), "--preset", "doom-smoke", "--set", "vae.z_sise=32"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert error.startswith("error: --set vae.z_sise=32: unknown config field 'vae.z_sise' (did you mean 'vae.z_size'?); vae has: kind, z_size, ")
    assert "Correct or drop that --set" in error and "config.json" not in error
    assert not run_dir.exists()
    # a bad value, and a value no stage could run with, are blamed on their --set too
    with pytest.raises(stage.StageError, match=r"^--set vae.z_size=3x: expected a number of type int\. Correct or drop"):
        stage.build_config(run_dir, "doom-smoke", ["vae.z_size=3x"])
    with pytest.raises(stage.StageError, match=r"^--set env.name=pong: env.name='pong': expected one of"):
        stage.build_config(run_dir, "doom-smoke", ["env.name=pong"])


def test_a_bad_key_in_config_json_names_the_file(tmp_path):
    stage.resolve_config(tmp_path, "doom-smoke", [])
    stored = json.loads((tmp_path / "config.json").read_text())
    stored["vae"]["z_sise"] = stored["vae"].pop("z_size")
    (tmp_path / "config.json").write_text(json.dumps(stored))
    with pytest.raises(stage.StageError) as error:
        stage.build_config(tmp_path, None, ["vae.epochs=3"])  # a good --set is not blamed
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'config.json'}: unknown config field 'vae.z_sise' (did you mean 'vae.z_size'?)")
    assert "--set" not in message and "Correct that entry of the file" in message


def test_invalid_choice_is_refused():
    with pytest.raises(ValueError, match="env.name='pong': expected one of carracing, doom, healthgathering"):
        config_module.build("carracing", overrides={"env.name": "pong"})


def test_help_lists_every_field_with_unit_and_source():
    text = config_module.help_text()
    assert "vae.z_size=32 [dimensions]" in text and "(source: paper, appendix A.1)" in text
    assert "generate.min_episode_steps" in text and "presets: carracing, doom" in text


def test_config_json_written_by_first_stage_and_reused(tmp_path):
    first = stage.parse("generate", "", ["--run-dir", str(tmp_path), "--preset", "doom-smoke", "--set", "vae.epochs=3"])
    assert not (tmp_path / "config.json").exists()  # parsing writes nothing; the stage's start does
    stage.begin(first)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["preset"] == "doom-smoke" and stored["vae"]["epochs"] == 3 and "versions" in stored
    later = stage.parse("train_vae", "", ["--run-dir", str(tmp_path)])  # no --preset needed
    assert later.config == first.config


def test_config_json_keeps_the_versions_the_run_started_with(tmp_path):
    config = config_module.build("doom-smoke")
    stage.save_config(tmp_path, config)
    path = tmp_path / "config.json"
    stored = json.loads(path.read_text())
    stored["versions"] = {"python": "3.11.0", "tensorflow": "2.21.0-elsewhere"}
    path.write_text(json.dumps(stored))
    stage.save_config(tmp_path, config)  # e.g. evaluate on another machine: the file is left alone
    assert json.loads(path.read_text())["versions"] == stored["versions"]
    changed = config_module.build("doom-smoke", None, {"evaluate.episodes": 7})
    stage.save_config(tmp_path, changed)  # a changed config is written with this machine's versions
    rewritten = json.loads(path.read_text())
    assert rewritten["evaluate"]["episodes"] == 7 and rewritten["versions"] == stage._versions()


def test_missing_config_without_preset_says_how_to_start(tmp_path):
    with pytest.raises(stage.StageError, match="start the run with a preset"):
        stage.parse("train_vae", "", ["--run-dir", str(tmp_path)])


def test_locked_field_after_finished_stage_is_refused(tmp_path):
    invocation = stage.parse("generate", "", ["--run-dir", str(tmp_path), "--preset", "carracing-smoke"])
    stage.save_config(tmp_path, invocation.config)  # as the stage's begin does
    stage.mark_done(tmp_path, "generate", invocation.config)
    with pytest.raises(stage.StageError) as error:
        stage.parse("train_vae", "", ["--run-dir", str(tmp_path), "--set", "env.max_steps=99"])
    message = str(error.value)
    assert "env.max_steps=99 contradicts" in message and "finished stage 'generate'" in message and "env.max_steps=60" in message
    assert "--force" in message
    # Unlocked fields (how a stage runs, not what it makes) may change.
    assert stage.parse("generate", "", ["--run-dir", str(tmp_path), "--set", "generate.num_workers=3"]).config.generate.num_workers == 3
    # Rerunning the finished stage itself with --force accepts the new value.
    assert stage.parse("generate", "", ["--run-dir", str(tmp_path), "--set", "env.max_steps=99", "--force"]).config.env.max_steps == 99


def test_locked_field_refusal_through_an_entry_point(tmp_path, capsys):
    from scripts import generate

    arguments = ["--run-dir", str(tmp_path), "--preset", "carracing-smoke", "--set", "generate.num_rollouts=1", "--set", "env.max_steps=3"]
    generate.main([*arguments, "--set", "generate.num_workers=1"])
    with pytest.raises(SystemExit) as exit_info:
        stage.run_main(generate.main, ["--run-dir", str(tmp_path), "--set", "generate.base_seed=5"])
    assert exit_info.value.code == 2
    assert "generate.base_seed=5 contradicts" in capsys.readouterr().err


def test_locked_field_of_an_interrupted_stage_is_refused(tmp_path):
    # A stage killed mid-way holds its values too: a resume must not mix outputs of two configs.
    invocation = stage.parse("generate", "", ["--run-dir", str(tmp_path), "--preset", "carracing-smoke"])
    stage.save_config(tmp_path, invocation.config)  # as the stage's begin does
    stage.mark_started(tmp_path, "generate", invocation.config)
    with pytest.raises(stage.StageError) as error:
        stage.parse("generate", "", ["--run-dir", str(tmp_path), "--set", "env.max_steps=99"])
    message = str(error.value)
    assert "env.max_steps=99 contradicts" in message and "started.json" in message and "unfinished stage 'generate'" in message
    assert "env.max_steps=60" in message and "python -m scripts.generate --run-dir" in message and "--force" in message
    assert stage.parse("generate", "", ["--run-dir", str(tmp_path), "--set", "generate.num_workers=3"]).config.generate.num_workers == 3
    forced = stage.parse("generate", "", ["--run-dir", str(tmp_path), "--set", "env.max_steps=99", "--force"])
    # started.json is written once: a --force run starts over from a cleaned folder, which removes it.
    stage.force_clean(tmp_path, "generate")
    stage.mark_started(tmp_path, "generate", forced.config)
    assert json.loads(stage.started_path(tmp_path, "generate").read_text())["locked"]["env.max_steps"] == 99


def test_a_retired_field_in_config_json_is_dropped_with_a_note(tmp_path, capsys):
    from common.files import read_json, write_json
    from scripts import stage

    config = stage.resolve_config(tmp_path, "doom-smoke", [])
    stored = read_json(tmp_path / "config.json")
    stored["rnn"]["num_steps"] = 4000  # written by the version that trained M on random windows
    write_json(tmp_path / "config.json", stored)
    again = stage.build_config(tmp_path, None, [])
    assert again.rnn == config.rnn
    assert "rnn.num_steps=4000 is no longer a setting and is ignored" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown config field 'rnn.num_steps'"):
        config_module.parse_overrides(["rnn.num_steps=10"])  # on the command line it is an error


def test_an_old_config_json_loads_unchanged_and_its_locks_still_hold(tmp_path, capsys):
    """A config.json written before the games had specs (round 4's Doom agent, once pretrained/doom,
    kept in tests/data with its stages' done.json files): every value it holds is
    read as it was; env.frame_size (retired) is dropped with a note; the fields games added since
    take their defaults; the locks its finished stages recorded still hold, frame_size among them
    ignored, as a lock on a field that no longer exists always was."""
    import shutil
    from pathlib import Path

    from common.files import read_json, write_json

    source = Path(__file__).parent / "data" / "doom_config_before_specs"
    run_dir = tmp_path / "doom"
    for name in ("config.json", "vae/done.json", "rnn/done.json", "controller/done.json"):
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, run_dir / name)
    stored = read_json(run_dir / "config.json")
    assert stored["env"]["frame_size"] == 64  # as the old version wrote it
    config = stage.build_config(run_dir, None, [])
    assert "env.frame_size=64 is no longer a setting and is ignored" in capsys.readouterr().err
    for section in config_module.SECTIONS:
        values = {key: value for key, value in stored[section].items() if f"{section}.{key}" != "env.frame_size"}
        assert {key: getattr(getattr(config, section), key) for key in values} == values, section
    assert not hasattr(config.env, "frame_size") and config.env.healthgathering_skill == 3
    stage.check_locks(run_dir, config)  # the finished V, M and C accept the migrated config
    # The env section's locks as the old version recorded them for generate (frame_size among them).
    old_locks = {f"env.{key}": value for key, value in stored["env"].items() if key != "carracing_renderer"}
    write_json(run_dir / "rollouts" / "done.json", {"stage": "generate", "locked": old_locks})
    stage.check_locks(run_dir, config)
    with pytest.raises(stage.StageError, match="env.doom_skill=3 contradicts .*rollouts/done.json"):
        stage.check_locks(run_dir, config_module.build("doom", stored_sections(stored), {"env.doom_skill": 3}))
    # A stage that runs with the config the file means (re-scoring a committed agent) leaves the file
    # byte-identical, so `git status` stays clean and the export record holds; a changed value rewrites it.
    before = (run_dir / "config.json").read_bytes()
    stage.save_config(run_dir, config)
    assert (run_dir / "config.json").read_bytes() == before
    stage.save_config(run_dir, config_module.build("doom", stored_sections(stored), {"evaluate.episodes": 7}))
    assert "frame_size" not in read_json(run_dir / "config.json")["env"]
    assert stage.build_config(run_dir, None, []).evaluate.episodes == 7 and "no longer a setting" not in capsys.readouterr().err


def stored_sections(stored: dict) -> dict:
    return config_module.drop_retired({name: stored[name] for name in config_module.SECTIONS})[0]


def test_new_runs_score_the_mean_on_the_validation_set_and_older_runs_keep_fresh_episodes(tmp_path):
    """carracing-cpu and doom pick their agent on a fixed validation set; a run whose config.json
    was written before controller.eval_set existed resumes as it ran (ADDED_FIELDS), not as its
    preset now says; the ranking settings a new run gets are today's (off)."""
    from common.files import read_json, write_json
    from scripts import stage

    for preset in ("carracing-cpu", "doom", "doom-smoke"):
        assert config_module.build(preset).controller.eval_set == "validation", preset
    assert config_module.build("carracing").controller.eval_set == "fresh"
    budget = config_module.build("carracing-cpu").controller
    assert (budget.shared_episodes, budget.adaptive_rollouts, budget.init_from) == (False, False, "")
    stage.resolve_config(tmp_path, "carracing-cpu", [])
    stored = read_json(tmp_path / "config.json")
    assert stored["controller"]["eval_set"] == "validation"  # a new run writes every field
    for name in ("eval_set", "shared_episodes", "adaptive_rollouts", "init_from"):
        del stored["controller"][name]
    write_json(tmp_path / "config.json", stored)
    older = stage.build_config(tmp_path, None, [])
    assert older.controller.eval_set == "fresh" and not older.controller.shared_episodes and older.controller.init_from == ""
    # a stage run on it (a re-score of a committed agent) leaves the file as it is: it already says this config
    from scripts import pipeline

    assert not pipeline.config_changes(tmp_path, None, []) and pipeline.config_changes(tmp_path, None, ["controller.eval_set=validation"])
    before = (tmp_path / "config.json").read_bytes()
    stage.save_config(tmp_path, older)
    assert (tmp_path / "config.json").read_bytes() == before
    changed = stage.build_config(tmp_path, None, ["controller.eval_set=validation"])
    stage.save_config(tmp_path, changed)
    assert read_json(tmp_path / "config.json")["controller"]["eval_set"] == "validation"
    write_json(tmp_path / "config.json", stored)
    assert stage.build_config(tmp_path, None, ["controller.eval_set=validation"]).controller.eval_set == "validation"
    with pytest.raises(ValueError, match="controller.eval_set='fixed': expected one of fresh, validation"):
        config_module.build("carracing", overrides={"controller.eval_set": "fixed"})
    assert set(config_module.ADDED_FIELDS) <= {f"controller.{name}" for name in vars(config_module.build("carracing").controller)}
