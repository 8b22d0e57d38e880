"""The fidelity report: can the dream be trusted? (paper, section 5: a controller trained inside M
does as well in the game as M imitates the game; the paper's agent scored 918 in its dream, 1092 real).

DIR/fidelity/report.json holds:
  random_policy     episode lengths of the data-collection policy (env/policies.py) in the dream
                    and in the real game: the same number of episodes, the same seeds; with each
                    side's "actions", what the policy did (workflows/behaviour.py);
  controller        the same for the trained controller (DIR/controller/mean.npz or best.npz),
                    or {"skipped": true, "note": ...} when there is none;
  done_calibration  M's death probability sigmoid(done_logit) on held-out real episodes against
                    the observed death frequency, by probability bin, and how often the done
                    logit fires (> 0) in the last k steps before a real death versus elsewhere;
  heldout_z_nll     M's z loss on the held-out episodes next to its training loss;
  done_rule         how the report's dream episodes end (controller.done_rule, or --done-rule):
                    the threshold or the sampled rule with its p, and M's calibration
                    (rnn/calibration.json: fitted values, data, scores and the calibration curve
                    before and after), or {"skipped": true, "note": ...} without that file;
  held_actions      the game's held actions (its spec's held_actions; TakeCover: no-op, left,
                    right), each held for whole episodes: lengths in the dream and in the game.
                    These are the simplest policies C can find, so one that lives far longer in
                    the dream than in the game is an exploit waiting for C.
                    {"skipped": true, "note": ...} for games without them (CarRacing).
done_calibration and heldout_z_nll (and "heldout") are {"skipped": true, "note": ...} when the
run has no series episodes (an exported agent ships only series/initial_z.npz).
DIR/fidelity/report.png shows the length histograms, the calibration curve of the raw done head
and the calibration curve before and after rnn/calibration.json.

Each part (held_actions is two per held action: dream and real) is saved to
DIR/fidelity/parts/<part>.json as soon as it finishes, with the inputs it was made from (settings,
digests of M, V, the controller and the series); a rerun keeps every part whose inputs are
unchanged and computes only the others.

Lengths, not returns: in TakeCover the return is the number of steps survived. Both sides use the
same seeds: the real game's episode with seed s and the dream row with seed s (its first frame and
its samples) are driven by the same random-policy actions, those of generate's episode with seed s.

The episodes of each side are played by workflows/fidelity_episodes.py; report.png and the terminal
summary are drawn by workflows/fidelity_summary.py.
"""

import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.errors import ArtifactError
from common.files import read_json, read_jsonl, write_json
from common.layout import FOLDERS, PARTS_FOLDER, RunLayout
from common.layout import command as stage_command
from controller.seeds import TRAINING_SEED_BASE
from controller.store import PARAMS_NAMES, load_agent, load_controller
from env.spec import all_specs
from vae.extract import weights_fingerprint
from workflows.behaviour import action_stats
from workflows.fidelity_episodes import (
    dream_controller_episodes,
    dream_random_policy_episodes,
    dream_scripted_lengths,
    real_controller_episodes,
    real_random_policy_episodes,
    real_scripted_lengths,
)
from workflows.fidelity_summary import PICTURE_NAME, REPORT_NAME, plot_report

FOLDER = FOLDERS["fidelity"]
# The held policies of every game (its spec's held_actions: name, the controller output held every step).
HELD_PARTS = tuple(dict.fromkeys(f"held_{name}_{side}" for spec in all_specs().values() for name, _ in spec.held_actions for side in ("dream", "real")))
PARTS = ("random_policy_dream", "random_policy_real", "controller_dream", "controller_real", "done_calibration", "heldout_z_nll", *HELD_PARTS)
HELDOUT_PARTS = ("done_calibration", "heldout_z_nll")
NO_SERIES_NOTE = (
    "no series episodes in series/ (an exported agent ships only series/initial_z.npz): the held-out checks need M's held-out "
    "episodes; run fidelity in the full run directory for them"
)
TRAINING_RECORDS = 10  # the training z loss is the mean of the last this many metrics records
NOISE_SEED = 0  # the held-out z resampling (as in training), fixed so the figure is reproducible
# What the four episode parts hold; raised when that changes, so older saved parts are recomputed (2: "actions").
EPISODE_STATS_VERSION = 2


@dataclasses.dataclass
class FidelitySettings:
    episodes: int = 100  # episodes per policy and per side (dream, real)
    first_seed: int = 500_000_000  # episode k uses seed first_seed + k: not a generate, evaluate or training seed
    params: str = "mean"  # which saved controller: 'best', 'mean' or 'selected'
    num_bins: int = 10  # probability bins of the calibration curve
    last_steps: int = 10  # k: "near a death" means within the last k steps of an episode that died
    done_rule: str | None = None  # how dream episodes end: 'threshold', 'sampled', or None for controller.done_rule


def episode_seeds(first_seed: int, episodes: int) -> np.ndarray:
    seeds = first_seed + np.arange(episodes, dtype=np.int64)
    if episodes < 1 or first_seed < 0 or seeds[-1] >= TRAINING_SEED_BASE:
        raise ArtifactError(f"fidelity seeds {first_seed}..{first_seed + episodes - 1}: expected at least one episode and seeds in [0, 2^31)")
    return seeds


def ratio_standard_error(dream: dict, real: dict) -> float | None:
    """Standard error of mean(dream) / mean(real) for two independent samples of episode lengths
    (length_stats), by the delta method: r sqrt(s_d^2 / (n_d m_d^2) + s_r^2 / (n_r m_r^2)), s the
    sample std (ddof 1); None with fewer than two episodes a side."""
    if min(dream["count"], real["count"]) < 2:
        return None
    terms = [np.var(side["lengths"], ddof=1) / (side["count"] * side["mean"] ** 2) for side in (dream, real)]
    return float(dream["mean"] / real["mean"] * np.sqrt(sum(terms)))


def length_stats(lengths) -> dict:
    """mean, std (ddof 0), median, min, max, count and every length."""
    lengths = np.asarray(lengths, np.int64)
    return {
        "mean": float(lengths.mean()),
        "std": float(lengths.std()),
        "median": float(np.median(lengths)),
        "min": int(lengths.min()),
        "max": int(lengths.max()),
        "count": int(len(lengths)),
        "lengths": lengths.tolist(),
    }


def episode_stats(lengths, actions: list[np.ndarray], env_name: str) -> dict:
    """length_stats of the episodes, and under "actions" what the policy did (workflows/behaviour.py)."""
    return {**length_stats(lengths), "actions": action_stats(actions, env_name)}


def _files_key(paths: list[Path]) -> str:
    """A digest of the names, sizes and modification times of many files (a re-extracted series changes it)."""
    digest = hashlib.sha256()
    for path in paths:
        status = path.stat()
        digest.update(f"{path.name}:{status.st_size}:{status.st_mtime_ns};".encode())
    return digest.hexdigest()


# --- M's training loss ----------------------------------------------------------------------------


def training_z_loss(metrics_path: Path, records: int = TRAINING_RECORDS) -> dict:
    """M's training z loss: the mean over the last `records` records of DIR/rnn/metrics.jsonl (each
    already a mean over rnn.log_every batches), the last one alone, and the last validation_z_loss
    that training logged, if it held episodes out."""
    all_rows = read_jsonl(metrics_path)
    rows = [row for row in all_rows if "z_loss" in row]
    if not rows:
        return {"z_loss": None, "note": f"{metrics_path.parent.name}/{metrics_path.name} has no z_loss record"}
    last = rows[-records:]
    validation = [row for row in all_rows if "validation_z_loss" in row]
    return {
        "z_loss": float(np.mean([row["z_loss"] for row in last])),
        "records": len(last),
        "steps": [int(last[0].get("step", 0)), int(last[-1].get("step", 0))],
        "last_z_loss": float(last[-1]["z_loss"]),
        "validation_z_loss": float(validation[-1]["validation_z_loss"]) if validation else None,
    }


# --- the report -----------------------------------------------------------------------------------


class _Parts:
    """DIR/fidelity/parts/<part>.json: a part is computed once for the same inputs (its key)."""

    def __init__(self, folder: Path, log: Callable[[str], None]):
        self.folder = folder
        self.log = log
        self.computed: list[str] = []

    def get(self, name: str, key: dict, compute: Callable[[], dict]) -> dict:
        path = self.folder / f"{name}.json"
        if path.exists():
            stored = read_json(path)
            if stored.get("key") == key and "result" in stored:
                self.log(f"fidelity: {name}: kept from {path}")
                return stored
            self.log(f"fidelity: {name}: {path} was made from other inputs; computing it again")
        started = time.perf_counter()
        result = compute()
        stored = {"key": key, "result": result, "seconds": round(time.perf_counter() - started, 3)}
        write_json(path, stored)
        self.computed.append(name)
        self.log(f"fidelity: {name}: {stored['seconds']:.1f} s")
        return stored


def clear(run_dir: Path) -> None:
    """--force: forget every part and the report."""
    import shutil

    folder = RunLayout(run_dir).fidelity
    shutil.rmtree(folder / PARTS_FOLDER, ignore_errors=True)
    for name in (REPORT_NAME, PICTURE_NAME):
        (folder / name).unlink(missing_ok=True)


@dataclasses.dataclass
class FidelityInputs:
    """Everything the report reads, loaded and checked before anything is computed or deleted."""

    model: object  # M (rnn/model.py)
    initial_mu: np.ndarray
    initial_logvar: np.ndarray
    heldout_paths: list[Path]
    heldout_episodes: list[dict]
    controller: dict | None  # params, digest, generation; None when there is no saved controller
    done_rule: object = None  # rnn/dream.py's DoneRule the dream episodes end by (None: the threshold)
    calibration: dict | None = None  # rnn/calibration.json, or {"skipped": True, "note": ...}


def load_inputs(config, run_dir: Path, settings: FidelitySettings, heldout_paths: list[Path]) -> FidelityInputs:
    """Load and check every input: M (with a done head), the first-frame table, the held-out series,
    and the saved controller with V's encoder if there is a controller. ArtifactError naming the file."""
    from rnn.fidelity import read_episodes
    from rnn.store import load_mdn_rnn
    from vae.series import read_initial_z

    run_dir = Path(run_dir)
    run = RunLayout(run_dir)
    episode_seeds(settings.first_seed, settings.episodes)
    if settings.params not in PARAMS_NAMES:
        raise ArtifactError(f"params={settings.params!r}: expected one of {', '.join(PARAMS_NAMES)}")
    if settings.num_bins < 1 or settings.last_steps < 1:
        raise ArtifactError(f"num_bins={settings.num_bins}, last_steps={settings.last_steps}: expected both >= 1")
    model = load_mdn_rnn(run.rnn, config)
    if not model.predict_done:
        raise ArtifactError(f"{run.rnn_weights}: this M has no done head (rnn.predict_done=false); the fidelity report needs a dream that ends episodes")
    initial_mu, initial_logvar = read_initial_z(run.series, config.vae.z_size)
    heldout_episodes = read_episodes(heldout_paths, config.vae.z_size, config.env.action_size)
    controller = None
    if run.controller_params(PARAMS_NAMES[settings.params]).exists():
        params, extras, _ = load_controller(config, run_dir, settings.params)
        controller = {"params": params, "digest": hashlib.sha256(params.tobytes()).hexdigest(), "generation": extras.get("generation")}
        encoder_path = run.vae_weights("encoder")
        if not encoder_path.exists():
            raise ArtifactError(f"{encoder_path} is missing: the controller's real episodes need V. Run `{run.command('train_vae')}` first.")
    rule, calibration = load_done_rule(config, run_dir, settings.done_rule)
    return FidelityInputs(model, initial_mu, initial_logvar, list(heldout_paths), heldout_episodes, controller, rule, calibration)


def load_done_rule(config, run_dir: Path, kind: str | None) -> tuple:
    """The dream's done rule (kind, default controller.done_rule; the sampled rule needs rnn/calibration.json,
    else an ArtifactError) and M's calibration for the report (a note instead when there is none to show)."""
    from rnn.calibration import done_rule as dream_done_rule
    from rnn.calibration import read_calibration

    rnn_dir = RunLayout(run_dir).rnn
    rule = dream_done_rule(config, rnn_dir, kind)
    try:
        calibration = read_calibration(rnn_dir, config.rnn.done_weight)
    except ArtifactError as error:
        calibration = {"skipped": True, "note": str(error).replace(str(run_dir), "DIR")}  # the same report for a copied run
    return rule, calibration


def fidelity_report(
    config,
    run_dir: Path,
    settings: FidelitySettings,
    inputs: FidelityInputs,
    heldout_from_training: bool,
    force: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict:
    """Compute the parts still missing, then write DIR/fidelity/report.json and report.png.

    inputs: from load_inputs; heldout_from_training: whether M's training really left the held-out
    series out (else the checks on them measure fit, not generalisation, and the report says so).
    force: forget the saved parts and compute every one again.
    """
    from rnn.fidelity import TeacherForcing, done_calibration, mean_z_nll

    run_dir = Path(run_dir)
    run = RunLayout(run_dir)
    folder = run.fidelity
    seeds = episode_seeds(settings.first_seed, settings.episodes)
    model, initial_mu, initial_logvar, controller = inputs.model, inputs.initial_mu, inputs.initial_logvar, inputs.controller
    heldout_paths = inputs.heldout_paths

    m_digest = weights_fingerprint(run.rnn_weights)
    dream_key = {
        "m": m_digest,
        "initial_z": weights_fingerprint(run.initial_z),
        "temperature": config.controller.temperature,
        "max_dream_steps": config.controller.max_dream_steps,
        "use_cell_state": config.controller.use_cell_state,
    }
    if inputs.done_rule is not None and inputs.done_rule.sampled:  # threshold parts keep the keys they had before done rules
        dream_key["done_rule"] = dataclasses.asdict(inputs.done_rule)
    real_key = {"env": dataclasses.asdict(config.env)}
    policy_key = {
        "generate": {name: getattr(config.generate, name) for name in ("policy", "brownian_scale", "brownian_drive_bias", "hold_min_steps", "hold_max_steps")}
    }
    episodes_key = {"episodes": settings.episodes, "first_seed": settings.first_seed, "episode_stats": EPISODE_STATS_VERSION}
    num_envs = config.controller.envs_per_worker
    if force:
        clear(run_dir)
    parts = _Parts(folder / PARTS_FOLDER, log)

    def bar(description: str):
        if not progress:
            return None
        from tqdm import tqdm

        return tqdm(total=settings.episodes, desc=description, unit="ep", leave=False)

    def stats(episodes: tuple[np.ndarray, list[np.ndarray]]) -> dict:
        lengths, actions = episodes
        return episode_stats(lengths, actions, config.env.name)

    def real_run(run: Callable, summarise: Callable = stats) -> dict:
        progress_bar = bar("real episodes")
        try:
            return summarise(run(progress_bar.update if progress_bar else None))
        finally:
            if progress_bar is not None:
                progress_bar.close()

    stored = {}
    stored["random_policy_dream"] = parts.get(
        "random_policy_dream",
        {**dream_key, **policy_key, **episodes_key, "env": config.env.name},
        lambda: stats(dream_random_policy_episodes(model, initial_mu, initial_logvar, config.controller, config.generate, config.env, seeds, inputs.done_rule)),
    )
    stored["random_policy_real"] = parts.get(
        "random_policy_real",
        {**real_key, **policy_key, **episodes_key},
        lambda: real_run(lambda update: real_random_policy_episodes(config.env, config.generate, seeds, num_envs, update)),
    )
    if controller is not None:
        controller_key = {"controller": controller["digest"], "params": settings.params}
        stored["controller_dream"] = parts.get(
            "controller_dream",
            {**dream_key, **controller_key, **episodes_key},
            lambda: stats(dream_controller_episodes(model, initial_mu, initial_logvar, config, controller["params"], seeds, inputs.done_rule)),
        )

        def controller_real(update):
            return real_controller_episodes(load_agent(config, run_dir), config.env, controller["params"], seeds, num_envs, update)

        v_digest = weights_fingerprint(run.vae_weights("encoder"))
        stored["controller_real"] = parts.get(
            "controller_real",
            {**real_key, **controller_key, **episodes_key, "m": m_digest, "v": v_digest, "sample_z": config.controller.sample_z},
            lambda: real_run(controller_real),
        )

    heldout_key = {"m": m_digest, "series": [path.name for path in heldout_paths], "series_files": _files_key(heldout_paths)}
    cache: dict = {}

    def loaded():
        """The held-out episodes and M's teacher forcing, made once for both parts that use them."""
        if "forcing" not in cache:
            cache["forcing"] = TeacherForcing(model)
        return cache["forcing"], inputs.heldout_episodes

    def teacher_forced_at_mu():
        if "at_mu" not in cache:
            forcing, held_out = loaded()
            cache["at_mu"] = forcing.run(held_out)
        return cache["at_mu"]

    def calibration() -> dict:
        outputs = teacher_forced_at_mu()
        result = done_calibration(
            [output["done_logit"] for output in outputs], [episode["done"] for episode in loaded()[1]], settings.num_bins, settings.last_steps
        )
        return {**result, "done_weight": config.rnn.done_weight}

    def heldout_nll() -> dict:
        forcing, held_out = loaded()
        sampled = forcing.run(held_out, noise_seed=NOISE_SEED)
        return {
            "z_nll": mean_z_nll([output["z_nll"] for output in sampled]),
            "z_nll_at_mu": mean_z_nll([output["z_nll"] for output in teacher_forced_at_mu()]),
            "steps": int(sum(len(output["z_nll"]) for output in sampled)),
            "episodes": len(sampled),
            "noise_seed": NOISE_SEED,
        }

    training = None
    if heldout_paths:  # else skipped: the run has no series episodes (NO_SERIES_NOTE)
        stored["done_calibration"] = parts.get(
            "done_calibration", {**heldout_key, "num_bins": settings.num_bins, "last_steps": settings.last_steps}, calibration
        )
        stored["heldout_z_nll"] = parts.get("heldout_z_nll", {**heldout_key, "noise_seed": NOISE_SEED}, heldout_nll)
        training = training_z_loss(run.metrics("train_rnn"))

    for name, value in config.env.spec.held_actions:
        held_key = {**episodes_key, "action": value}
        dream_held = np.full((len(seeds), config.controller.max_dream_steps, config.env.action_size), value, np.float32)
        real_held = np.full((config.env.max_steps, config.env.action_size), value, np.float32)
        stored[f"held_{name}_dream"] = parts.get(
            f"held_{name}_dream",
            {**dream_key, **held_key},
            lambda held=dream_held: length_stats(dream_scripted_lengths(model, initial_mu, initial_logvar, config.controller, held, seeds, inputs.done_rule)),
        )
        stored[f"held_{name}_real"] = parts.get(
            f"held_{name}_real",
            {**real_key, **held_key},
            lambda held=real_held: real_run(lambda update: real_scripted_lengths(config.env, seeds, lambda seed: held, num_envs, update), length_stats),
        )

    generation = None if controller is None else controller["generation"]
    report = assemble(config, settings, stored, controller is not None, generation, heldout_paths, heldout_from_training, training)
    report["done_rule"] = done_rule_section(inputs.done_rule, inputs.calibration)
    write_outputs(folder, report)
    return report


def assemble(
    config,
    settings: FidelitySettings,
    stored: dict,
    has_controller: bool,
    controller_generation,
    heldout_paths: list[Path],
    heldout_from_training: bool,
    training: dict | None,
) -> dict:
    """report.json from the parts (nothing here is computed from scratch, so a rerun that keeps every
    part gives the same bytes)."""

    def sides(dream: dict, real: dict) -> dict:
        return {
            "dream": dream["result"],
            "real": real["result"],
            "dream_over_real_mean": dream["result"]["mean"] / real["result"]["mean"],
            "dream_over_real_standard_error": ratio_standard_error(dream["result"], real["result"]),
        }

    random_policy = {"policy": config.generate.policy, **sides(stored["random_policy_dream"], stored["random_policy_real"])}
    # paths relative to the run directory: a copied or moved run keeps the same report
    controller_name = f"{FOLDERS['train_controller']}/{PARAMS_NAMES[settings.params]}"
    if has_controller:
        controller = {
            "skipped": False,
            "params": settings.params,
            "path": controller_name,
            "generation": controller_generation,
            **sides(stored["controller_dream"], stored["controller_real"]),
        }
    else:
        controller = {
            "skipped": True,
            "note": f"no {controller_name} in the run directory: run `{stage_command('train_controller', 'DIR')}`, then this again",
        }
    if all(name in stored for name in HELDOUT_PARTS):
        heldout_note = (
            "held out from M's training"
            if heldout_from_training
            else "M's training saw these episodes too (it held none out): these numbers measure fit, not generalisation"
        )
        heldout = {"series": [path.name for path in heldout_paths], "held_out_from_training": bool(heldout_from_training), "note": heldout_note}
        calibration = stored["done_calibration"]["result"]
        heldout_nll = {
            **stored["heldout_z_nll"]["result"],
            "training": training,
            "note": "z_nll: z resampled from (mu, sigma) for inputs and targets as in training, whole episodes from a zero state; z_nll_at_mu: z = mu",
        }
    else:
        heldout = {"series": [], "held_out_from_training": False, "skipped": True, "note": NO_SERIES_NOTE}
        calibration = heldout_nll = {"skipped": True, "note": NO_SERIES_NOTE}
    if config.env.spec.held_actions:
        held_actions = {
            "skipped": False,
            "actions": {
                name: {"action": value, **sides(stored[f"held_{name}_dream"], stored[f"held_{name}_real"])} for name, value in config.env.spec.held_actions
            },
        }
    else:
        with_held = ", ".join(name for name, spec in all_specs().items() if spec.held_actions)
        held_actions = {"skipped": True, "note": f"held actions are defined for {with_held} (discrete actions), not {config.env.name}"}
    return {
        "env": config.env.name,
        "episodes": settings.episodes,
        "first_seed": settings.first_seed,
        "temperature": config.controller.temperature,
        "max_steps": {"dream": config.controller.max_dream_steps, "real": config.env.max_steps},
        "random_policy": random_policy,
        "controller": controller,
        "heldout": heldout,
        "done_calibration": calibration,
        "heldout_z_nll": heldout_nll,
        "held_actions": held_actions,
        "seconds": {name: stored[name]["seconds"] for name in PARTS if name in stored},
    }


CALIBRATION_FIELDS = ("form", "done_weight", "offset", "scale", "uses_scale", "scale_verdict", "data", "scores", "death_rate", "death_rate_by_group", "bins")


def done_rule_section(rule, calibration: dict | None) -> dict:
    """report.json's done_rule: the rule the dream parts were made with and M's calibration (rnn/calibration.json)."""
    from rnn.dream import DoneRule

    rule = rule or DoneRule()
    shown = calibration if calibration is None or calibration.get("skipped") else {key: calibration[key] for key in CALIBRATION_FIELDS}
    return {"rule": rule.kind, "description": rule.describe(), "calibration": shown or {"skipped": True, "note": "no calibration given"}}


def write_outputs(folder: Path, report: dict) -> None:
    """report.json and report.png, left untouched when the report is unchanged (a rerun that kept every part)."""
    report_path, picture_path = folder / REPORT_NAME, folder / PICTURE_NAME
    if report_path.exists() and picture_path.exists() and read_json(report_path) == report:
        return
    plot_report(report, picture_path)
    write_json(report_path, report)  # last: it marks the report finished
