"""The main job, scripts.demo: the committed agent is copied (checked, never overwritten) so nothing
is written in the repository, the agent's stages get the right arguments, and the closing
lines describe what the run made. The whole job end to end is `-m slow`."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import ArtifactError, StageError
from common.files import write_json, write_jsonl
from scripts import demo, stage

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED_DOOM = ROOT / "pretrained" / "doom"


def make_agent(folder: Path, files: dict[str, bytes]) -> Path:
    """A folder as export_agent leaves it: the files and an EXPORTED.json recording their SHA-256."""
    record = {"files": {}, "source_evaluation": {"mean": 739.31, "std": 453.898, "episodes": 100}}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        record["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    write_json(folder / stage.EXPORTED_MARKER, record)
    return folder


def test_the_agent_is_copied_once_and_only_its_exported_files(tmp_path):
    source = make_agent(tmp_path / "agent", {"config.json": b"{}", "vae/encoder.weights.h5": b"weights"})
    (source / "eval").mkdir()
    (source / "eval" / "summary.json").write_text("{}")  # a re-score's output next to the agent: not part of it
    target = tmp_path / "runs" / "doom-pretrained"
    assert demo.copy_agent(source, target) is True
    assert sorted(str(path.relative_to(target)) for path in target.rglob("*") if path.is_file()) == [
        "EXPORTED.json",
        "config.json",
        "vae/encoder.weights.h5",
    ]
    assert (target / "vae" / "encoder.weights.h5").read_bytes() == b"weights"
    assert (target / "EXPORTED.json").read_bytes() == (source / "EXPORTED.json").read_bytes()
    (target / "eval").mkdir()  # what the demo's stages then write
    assert demo.copy_agent(source, target) is False  # the same agent: kept as it is, with its outputs
    assert (target / "eval").is_dir()
    assert sorted(path.name for path in target.parent.iterdir()) == ["doom-pretrained"]  # no staging folder left


def test_a_folder_holding_something_else_is_refused_and_left_as_it_is(tmp_path):
    source = make_agent(tmp_path / "agent", {"config.json": b"{}"})
    other = make_agent(tmp_path / "runs" / "doom-pretrained", {"config.json": b'{"other": 1}'})
    with pytest.raises(StageError, match=r"doom-pretrained exists but does not hold the agent in .*agent .*`rm -r .*doom-pretrained`"):
        demo.copy_agent(source, other)
    assert (other / "config.json").read_bytes() == b'{"other": 1}'
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    with pytest.raises(StageError, match="EXPORTED.json differs or is missing"):
        demo.copy_agent(source, plain)
    assert (plain / "notes.txt").read_text() == "mine"


def test_a_damaged_agent_is_refused_before_anything_is_placed(tmp_path):
    source = make_agent(tmp_path / "agent", {"config.json": b"{}", "rnn/mdn_rnn.weights.h5": b"weights"})
    (source / "rnn" / "mdn_rnn.weights.h5").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    target = tmp_path / "runs" / "doom-pretrained"
    with pytest.raises(ArtifactError, match=r"mdn_rnn.weights.h5 differs from the SHA-256 that .*EXPORTED.json records.*git checkout -- "):
        demo.copy_agent(source, target)
    assert list(target.parent.iterdir()) == []
    with pytest.raises(ArtifactError, match=r"EXPORTED.json does not exist: .* is not an exported agent"):
        demo.copy_agent(tmp_path / "runs", target)


@pytest.mark.skipif(not (PRETRAINED_DOOM / stage.EXPORTED_MARKER).is_file(), reason="no committed Doom agent in this checkout")
def test_the_committed_agent_copies_whole_and_checks_out(tmp_path):
    target = tmp_path / "doom-pretrained"
    assert demo.copy_agent(PRETRAINED_DOOM, target)
    assert stage.is_exported_agent(target)
    for name in ("config.json", "vae/encoder.weights.h5", "vae/decoder.weights.h5", "rnn/mdn_rnn.weights.h5", "controller/mean.npz", "series/initial_z.npz"):
        assert (target / name).read_bytes() == (PRETRAINED_DOOM / name).read_bytes()


def test_the_agent_stages_score_the_same_episodes_for_the_agent_and_the_random_policy(tmp_path):
    run_dir = tmp_path / "doom-pretrained"
    commands = [demo.agent_stage_argv(name, run_dir, 5) for name in demo.AGENT_STAGES]
    assert commands == [
        ("evaluate", ["--run-dir", str(run_dir), "--episodes", "5"]),
        ("evaluate", ["--run-dir", str(run_dir), "--episodes", "5", "--params", "random"]),
        ("dream", ["--run-dir", str(run_dir)]),
        ("check_vae", ["--run-dir", str(run_dir)]),
    ]


def record(generation: int, return_mean: float) -> dict:
    return {"generation": generation, "fitness_mean": return_mean - 1e-5, "return_mean": return_mean}


def test_the_closing_lines_describe_what_the_run_made(tmp_path):
    smoke_dir, agent_dir = tmp_path / "doom-smoke", tmp_path / "doom-pretrained"
    source = make_agent(tmp_path / "agent", {"config.json": b"{}"})
    stage.resolve_config(smoke_dir, "doom-smoke", [])
    write_jsonl(smoke_dir / "controller" / "metrics.jsonl", [record(generation, 200.0) for generation in range(3)])
    write_json(agent_dir / "eval" / "summary.json", {"mean": 638.6, "std": 258.14, "episodes": 5})
    write_json(agent_dir / "eval_random" / "summary.json", {"mean": 330.4, "std": 213.35, "episodes": 5})
    (agent_dir / "dream").mkdir()
    (agent_dir / "dream" / "dream.mp4").write_bytes(b"video")

    lines = demo.closing_lines(smoke_dir, agent_dir, source)
    text = "\n".join(lines)
    assert "  the agent survives          639 ± 258 steps over 5 episodes (its run: 739 ± 454 over 100)" in lines
    assert "  the random policy survives  330 ± 213 steps over 5 episodes, the same episodes" in lines
    assert f"  {agent_dir / 'dream' / 'dream.mp4'}" in lines
    assert f"  {agent_dir / 'eval' / 'episode.mp4'}  (missing)" in lines
    assert "a flat line at the dream's 200-step cap" in text and "CMA-ES has nothing to rank" in text
    assert text.index("dream.mp4") < text.index(str(smoke_dir))  # the trained agent comes first

    write_jsonl(smoke_dir / "controller" / "metrics.jsonl", [record(0, 120.0), record(1, 150.0), record(2, 200.0)])
    assert demo.smoke_curve_text(smoke_dir) == "population mean fitness 120 -> 200 over 3 generations (1 with every candidate at the cap)"


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        demo.parse_arguments(["--episodes", "0"])
    assert "--episodes 0: expected at least 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not (PRETRAINED_DOOM / stage.EXPORTED_MARKER).is_file(), reason="no committed Doom agent in this checkout")
def test_the_whole_demo_makes_every_picture_and_writes_nothing_in_the_repository(tmp_path, capsys):
    def repository_state() -> str:
        return subprocess.run(["git", "status", "--porcelain", "--ignored", "pretrained"], cwd=ROOT, capture_output=True, text=True).stdout

    before = repository_state()
    demo.main(["--runs", str(tmp_path), "--episodes", "2"])
    output = capsys.readouterr().out
    for path in (
        "doom-smoke/vae/reconstructions.png",
        "doom-smoke/controller/curve.png",
        "doom-smoke/dream/dream.mp4",
        "doom-pretrained/eval/episode.mp4",
        "doom-pretrained/eval_random/summary.json",
        "doom-pretrained/dream/dream.mp4",
        "doom-pretrained/vae/reconstructions.png",
    ):
        assert (tmp_path / path).stat().st_size > 0, path
        assert path.endswith(".json") or str(tmp_path / path) in output
    assert "(missing)" not in output
    assert "  the agent survives " in output and "  the random policy survives " in output
    assert repository_state() == before

    demo.main(["--runs", str(tmp_path), "--episodes", "2"])  # a rerun plays and trains nothing again
    output = capsys.readouterr().out
    assert output.count("already finished, skipped") == 8 and output.count("already made, skipped") == 2
    assert "already holds these 2 episodes" in output


def test_stages_in_one_process_hide_only_tensorflows_retracing_warning():
    """The pipeline and the demo run stages in one process, each tracing V's functions for its own V:
    TensorFlow's retracing warning for that is dropped, any other TensorFlow warning still shows."""
    script = (
        "import logging, sys\n"
        "import tensorflow as tf\n"
        "from scripts import pipeline\n"
        "if sys.argv[1] == 'quiet':\n"
        "    pipeline.quiet_expected_retracing()\n"
        "    pipeline.quiet_expected_retracing()  # once is enough; twice installs nothing more\n"
        "    assert len(logging.getLogger('tensorflow').filters) == 1\n"
        "def make(offset):\n"
        "    @tf.function(input_signature=[tf.TensorSpec((None,), tf.float32)])\n"
        "    def shift(x):\n"
        "        return x + offset\n"
        "    return shift\n"
        "for offset in range(12):\n"
        "    make(float(offset))(tf.constant([1.0]))\n"
        "tf.get_logger().warning('another warning')\n"
    )
    outputs = {}
    for mode in ("loud", "quiet"):
        result = subprocess.run([sys.executable, "-c", script, mode], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        outputs[mode] = result.stderr
    assert "triggered tf.function retracing" in outputs["loud"]
    assert "triggered tf.function retracing" not in outputs["quiet"]
    assert "another warning" in outputs["quiet"]
