"""The fidelity report (workflows/fidelity.py) for a reader: report.png (plot_report) and the
terminal summary (summary_lines), both drawn from report.json's dict alone."""

from pathlib import Path

import numpy as np

from common.files import atomic_path
from common.layout import PICTURE_NAME, REPORT_NAME
from workflows.behaviour import describe as describe_actions


def plot_report(report: dict, path: Path) -> None:
    """Length histograms, dream vs real, for each policy, and the done head's calibration curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    for axis, (title, part) in zip(axes[:2], (("random policy", report["random_policy"]), ("controller", report["controller"])), strict=True):
        if part.get("skipped"):
            axis.text(0.5, 0.5, "no controller yet", ha="center", va="center", transform=axis.transAxes)
            axis.set_title(f"{title}: skipped")
            axis.set_axis_off()
            continue
        dream, real = part["dream"]["lengths"], part["real"]["lengths"]
        bins = np.histogram_bin_edges(np.concatenate([dream, real]), bins=min(30, max(5, len(dream) // 3)))
        axis.hist(real, bins=bins, alpha=0.55, label=f"real: {part['real']['mean']:.0f} ± {part['real']['std']:.0f}")
        axis.hist(dream, bins=bins, alpha=0.55, label=f"dream: {part['dream']['mean']:.0f} ± {part['dream']['std']:.0f}")
        axis.set_xlabel("episode length (steps)")
        axis.set_ylabel("episodes")
        axis.set_title(f"{title}, {part['dream']['count']} episodes each")
        axis.legend()
    _plot_calibration(axes[2], report["done_calibration"])
    _plot_calibration_before_after(axes[3], report.get("done_rule", {}).get("calibration", {"skipped": True}))
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=90)
    plt.close(figure)


def _plot_calibration(axis, calibration: dict) -> None:
    """M's done head against real deaths, or a note when the held-out parts were skipped."""
    if calibration.get("skipped"):
        axis.text(0.5, 0.5, "no held-out series episodes", ha="center", va="center", transform=axis.transAxes)
        axis.set_title("done head: skipped")
        axis.set_axis_off()
        return
    filled = [entry for entry in calibration["bins"] if entry["count"]]
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    axis.plot([entry["mean_predicted"] for entry in filled], [entry["observed_frequency"] for entry in filled], marker="o", label="M's done head")
    for entry in filled:
        axis.annotate(str(entry["count"]), (entry["mean_predicted"], entry["observed_frequency"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    fires = calibration["fires"]
    near, elsewhere = fires["near_death"]["rate"], fires["elsewhere"]["rate"]
    axis.set_title(
        f"done head on {calibration['episodes']} held-out episodes\nlogit > 0 in last {fires['last_steps']} steps before death: "
        f"{_percent(near)}, elsewhere {_percent(elsewhere)}",
        fontsize=9,
    )
    axis.set_xlabel("predicted p = sigmoid(done logit), bin mean (steps per bin)")
    axis.set_ylabel("observed death frequency")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(loc="upper left")


def _plot_calibration_before_after(axis, calibration: dict) -> None:
    """rnn/calibration.json's curve on log axes: observed death frequency per bin (equal predicted
    deaths, by logit) against the mean p of the raw head, the w-corrected head and the calibrated p."""
    if calibration.get("skipped"):
        axis.text(0.5, 0.5, "no rnn/calibration.json\n(python -m scripts.calibrate)", ha="center", va="center", transform=axis.transAxes)
        axis.set_title("calibration: skipped")
        axis.set_axis_off()
        return
    bins = calibration["bins"]
    floor = 0.5 / max(entry["count"] for entry in bins)  # where a bin without deaths is drawn (half a death)
    observed = [max(entry["observed_frequency"], floor) for entry in bins]
    predicted = [entry[key] for entry in bins for key in ("raw", "weight_corrected", "calibrated")]
    low, high = min([*predicted, *observed]) / 2, min(1.0, max([*predicted, *observed]) * 2)
    axis.plot([low, high], [low, high], color="grey", linestyle="--", label="calibrated")
    scores = calibration["scores"]
    for key, label in (("raw", "before: sigmoid(x)"), ("weight_corrected", "sigmoid(x - log w)"), ("calibrated", "after: calibrated p")):
        axis.plot([entry[key] for entry in bins], observed, marker="o", label=f"{label}, log-loss {scores[key]['log_loss']:.4f}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlim(low, high)
    axis.set_ylim(low, high)
    data, rate = calibration["data"], calibration["death_rate"]
    axis.set_title(
        f"done head before / after calibration ({data['source']}: {data['episodes']} episodes, {data['deaths']} deaths)\n"
        f"death rate {rate['observed']:.4f}; threshold fires {rate['threshold_rule_fires']:.4f}; calibrated {rate['calibrated_mean_p']:.4f}",
        fontsize=9,
    )
    axis.set_xlabel("predicted p per step, bin mean (bins of equal predicted deaths)", fontsize=8)
    axis.set_ylabel("observed deaths per step (no death: half a death)", fontsize=8)
    axis.legend(loc="upper left", fontsize=7)


def _plus_minus(standard_error) -> str:
    return "" if standard_error is None else f" ± {standard_error:.2f}"


def _percent(rate) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def summary_lines(report: dict, folder: Path) -> list[str]:
    """The terminal summary."""

    def sides(title: str, part: dict) -> list[str]:
        dream, real = part["dream"], part["real"]
        return [
            f"  {title}: dream {dream['mean']:.1f} ± {dream['std']:.1f}, real {real['mean']:.1f} ± {real['std']:.1f} steps "
            f"(dream / real {part['dream_over_real_mean']:.2f}{_plus_minus(part.get('dream_over_real_standard_error'))})",
            f"    actions in the dream: {describe_actions(dream['actions'])}",
            f"    actions in the game:  {describe_actions(real['actions'])}",
        ]

    caps = report["max_steps"]
    lines = [
        f"fidelity: {report['env']}, {report['episodes']} episodes per side, tau {report['temperature']}, caps dream {caps['dream']} / real {caps['real']}"
    ]
    lines.extend(sides(f"random policy ({report['random_policy']['policy']})", report["random_policy"]))
    controller = report["controller"]
    if controller["skipped"]:
        lines.append(f"  controller: skipped ({controller['note']})")
    else:
        lines.extend(sides(f"controller ({controller['params']})", controller))
    if report["heldout"].get("skipped"):
        lines.append(f"  done head and held-out z NLL: skipped ({report['heldout']['note']})")
    else:
        lines.extend(_heldout_lines(report))
    lines.extend(_done_rule_lines(report.get("done_rule")))
    held = report["held_actions"]
    if not held["skipped"]:
        lines.append(
            "  one action held all episode, dream / real steps: "
            + ", ".join(f"{name} {part['dream']['mean']:.0f} / {part['real']['mean']:.0f}" for name, part in held["actions"].items())
        )
    lines.append(f"  -> {folder / REPORT_NAME}, {folder / PICTURE_NAME}")
    return lines


def _done_rule_lines(section: dict | None) -> list[str]:
    """The dream's done rule and M's calibration, in two lines."""
    if section is None:
        return []
    lines = [f"  dream done rule: {section['description']}"]
    calibration = section["calibration"]
    if calibration.get("skipped"):
        lines.append(f"  M's calibration: skipped ({calibration['note']})")
        return lines
    from rnn.calibration import summary

    lines.append(f"  M's calibration (rnn/calibration.json): {summary(calibration)}")
    return lines


def _heldout_lines(report: dict) -> list[str]:
    """The summary of the done head's calibration and the held-out z loss."""
    lines = []
    calibration = report["done_calibration"]
    fires = calibration["fires"]
    lines.append(
        f"  done head on {calibration['episodes']} held-out episodes ({calibration['steps']} steps, {calibration['deaths']} deaths): logit > 0 in the last "
        f"{fires['last_steps']} steps before a death {_percent(fires['near_death']['rate'])} of steps, elsewhere {_percent(fires['elsewhere']['rate'])}; "
        f"mean predicted p {calibration['mean_predicted']:.4f} vs observed {calibration['observed_frequency']:.4f}"
    )
    nll = report["heldout_z_nll"]
    training = nll["training"]
    if training["z_loss"] is None:
        training_text = training["note"]
    else:
        training_text = f"training {training['z_loss']:.4f} (last {training['records']} records, to step {training['steps'][1]})"
        if training["validation_z_loss"] is not None:
            training_text += f", training's own validation {training['validation_z_loss']:.4f}"
    lines.append(f"  held-out z NLL {nll['z_nll']:.4f} (at mu {nll['z_nll_at_mu']:.4f}); {training_text}")
    if not report["heldout"]["held_out_from_training"]:
        lines.append(f"  note: {report['heldout']['note']}")
    return lines
