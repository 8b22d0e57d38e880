"""curve.png says when every candidate reached the dream's cap (CMA-ES then ranks by weight decay
alone) and never draws a flat curve as float noise about an offset axis."""

import matplotlib.figure
import pytest

from controller.train import cap_note, capped_generations, plot_curve, return_cap
from scripts import config as config_module

CAP = 200.0


def record(generation: int, return_mean: float, fitness: float) -> dict:
    """One generation's record as Rank0.tell writes it (fitness = return - weight decay)."""
    return {
        "generation": generation,
        "fitness_mean": fitness,
        "fitness_best": fitness + 2e-6,
        "fitness_worst": fitness - 3e-6,
        "fitness_std": 1e-6,
        "return_mean": return_mean,
        "return_best": min(return_mean + 1.0, CAP),
        "best_ever_fitness": fitness + 2e-6,
        "sigma": 0.1,
    }


# doom-smoke's own curve: every candidate at the 200-step cap, fitness 200 minus a weight decay of ~1e-5
ALL_CAPPED = [record(generation, CAP, CAP - 1.2e-5) for generation in range(3)]


def test_return_cap_is_the_dream_cap_only_where_each_step_returns_one():
    assert return_cap(config_module.build("doom-smoke")) == 200.0
    assert return_cap(config_module.build("doom")) == 2100.0
    assert return_cap(config_module.build("doom", overrides={"rnn.predict_reward": True})) is None  # M's reward head: no cap on the return
    assert return_cap(config_module.build("carracing-smoke")) is None  # trained in the real env


def test_capped_generations_are_those_whose_every_rollout_returned_the_cap():
    one_rollout_short = CAP - 1 / (64 * 16)  # one of 64 x 16 dream episodes died one step early
    records = [record(0, 180.0, 179.9), record(1, one_rollout_short, 199.9), record(2, CAP, 199.99), record(3, float(CAP), 199.99)]
    assert capped_generations(records, CAP) == [2, 3]
    assert capped_generations(records, None) == []
    assert capped_generations(ALL_CAPPED, CAP) == [0, 1, 2]


def test_the_note_names_the_cap_and_how_many_generations_had_nothing_to_rank():
    assert cap_note(ALL_CAPPED, CAP) == (
        "every candidate reached the dream cap of 200 steps in every generation:\nnothing to rank (fitness = 200 - weight decay)"
    )
    partial = [record(0, 150.0, 149.0), *ALL_CAPPED[1:]]
    assert cap_note(partial, CAP) == (
        "every candidate reached the dream cap of 200 steps in 2 of 3 generations (x):\nnothing to rank (fitness = 200 - weight decay)"
    )
    assert cap_note([record(0, 150.0, 149.0)], CAP) is None
    assert cap_note(ALL_CAPPED, None) is None


@pytest.fixture
def saved_figures(monkeypatch):
    """Every figure plot_curve saves, drawn, as it went to disk."""
    figures = []
    save = matplotlib.figure.Figure.savefig

    def keep(figure, *arguments, **keywords):
        save(figure, *arguments, **keywords)
        figures.append(figure)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return figures


def test_plot_curve_writes_the_note_and_a_plain_axis_for_an_all_capped_run(tmp_path, saved_figures):
    plot_curve(ALL_CAPPED, tmp_path / "curve.png", "doom: CMA-ES (dream)", cap=CAP)
    assert (tmp_path / "curve.png").stat().st_size > 0
    axes = saved_figures[0].axes[0]  # the fitness axes (the first)
    assert [text.get_text() for text in axes.texts] == [cap_note(ALL_CAPPED, CAP)]
    assert axes.yaxis.get_offset_text().get_text() == ""  # no "+1.99999e2" above the axis
    low, high = axes.get_ylim()
    assert low < CAP - 1 and high > CAP + 1  # the fitness values are one line at the cap, not noise filling the axes
    labels = [label.get_text() for label in axes.get_yticklabels()]
    assert "200" in labels or "200.0" in labels


def test_plot_curve_without_a_cap_still_draws_a_flat_curve_on_a_plain_axis(tmp_path, saved_figures):
    plot_curve(ALL_CAPPED, tmp_path / "curve.png", "title")
    axes = saved_figures[0].axes[0]  # the fitness axes (the first)
    assert len(axes.texts) == 0
    assert axes.yaxis.get_offset_text().get_text() == ""
    low, high = axes.get_ylim()
    assert high - low >= 2


def test_plot_curve_leaves_a_learning_curve_as_it_was(tmp_path, saved_figures):
    records = [record(generation, 100.0 + 40 * generation, 99.0 + 40 * generation) for generation in range(3)]
    plot_curve(records, tmp_path / "curve.png", "title", cap=CAP)
    axes = saved_figures[0].axes[0]  # the fitness axes (the first)
    assert len(axes.texts) == 0
    low, high = axes.get_ylim()
    assert low < 99.0 and 180.0 < high < CAP  # autoscaled to the data, the cap not drawn
