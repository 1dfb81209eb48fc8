"""The reports' plot style, checked on the pixels drawn: counts readable on every cell, boxes and masks in their
class's colour where they are, heat over a visible image, legends beside the data; the tune report's layout and its
word on too few trials."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import optuna
import pytest

from ..core.report.page import Report, figure_png, heatmap_figure, plt
from ..core.report.plots import (
    DARK_TEXT,
    LIGHT_TEXT,
    annotate_counts,
    blend_mask,
    class_colours,
    draw_boxes,
    heat_overlay,
    legend_outside,
    overlay_mask,
    text_colour,
)
from ..tools.tune import trials_frame
from ..tools.tune_report import MIN_IMPORTANCE_TRIALS, tune_report


def canvas(figure: plt.Figure) -> np.ndarray:
    """The figure's RGB pixels as drawn (rows from the top)."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[:, :, :3]


def pixel(figure: plt.Figure, axis: plt.Axes, x: float, y: float) -> np.ndarray:
    """The drawn colour at data point (x, y) of `axis`."""
    column, row = axis.transData.transform((x, y))
    return canvas(figure)[round(figure.bbox.height - row), round(column)].astype(int)


def test_counts_are_dark_on_light_cells_and_light_on_dark_cells() -> None:
    assert text_colour("white") == DARK_TEXT and text_colour("black") == LIGHT_TEXT
    assert text_colour("#fde725") == DARK_TEXT and text_colour("#440154") == LIGHT_TEXT  # viridis' ends
    figure, axis = plt.subplots()
    matrix = np.array([[95, 0], [3, 30]])  # viridis at 30/95 is dark blue, at 95/95 bright yellow
    image = axis.imshow(matrix, cmap="viridis")
    colours = {text.get_text(): text.get_color() for text in annotate_counts(axis, matrix, image)}
    assert colours == {"95": DARK_TEXT, "0": LIGHT_TEXT, "3": LIGHT_TEXT, "30": LIGHT_TEXT}
    plt.close(figure)
    # The same through the report's heat map (a confusion matrix): the bright diagonal takes dark counts.
    figure = heatmap_figure(np.array([[40, 1], [2, 38]]), ["cat", "dog"], "confusion", "{:.0f}", 0, None)
    colours = {text.get_text(): text.get_color() for text in figure.axes[0].texts}
    assert colours == {"40": DARK_TEXT, "38": DARK_TEXT, "1": LIGHT_TEXT, "2": LIGHT_TEXT}
    assert figure_png(figure).startswith(b"\x89PNG")


def test_boxes_are_drawn_in_their_class_colour_where_they_are() -> None:
    names = ["cat", "dog"]
    colours = class_colours(2)
    figure, axis = plt.subplots(figsize=(4, 4), dpi=100)
    axis.imshow(np.zeros((100, 100, 3), np.uint8))
    draw_boxes(axis, np.array([[20, 30, 80, 90]]), [1], names, linewidth=3)
    axis.axis("off")
    edge = pixel(figure, axis, 80, 60)  # the middle of the right edge: the box's line, dog's colour
    assert np.abs(edge - colours[1] * 255).max() <= 20, edge
    inside = pixel(figure, axis, 50, 60)  # inside the box: the black image shows through
    assert inside.max() <= 10, inside
    assert np.abs(pixel(figure, axis, 80, 60) - colours[0] * 255).max() > 40  # not cat's colour
    plt.close(figure)


def test_masks_are_blended_in_their_class_colour_over_a_visible_image() -> None:
    image = np.full((40, 40, 3), 100, np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:30] = 2  # class 1 (green) of three
    colours = class_colours(3)
    blended = blend_mask(image, mask, colours, alpha=0.5)
    expected = np.round(0.5 * 100 + 0.5 * colours[1] * 255)
    assert np.array_equal(blended[15, 20], expected.astype(np.uint8))
    assert np.array_equal(blended[30, 30], [100, 100, 100])  # background untouched
    # A mask of another size is stretched over the image (nearest), as sample masks are kept small.
    assert np.array_equal(blend_mask(image, mask[::2, ::2], colours)[15, 20], blended[15, 20])
    figure, axis = plt.subplots(figsize=(4, 4), dpi=100)
    overlay_mask(axis, image, mask, ["a", "b", "c"], colours, legend=True)
    axis.axis("off")
    drawn = pixel(figure, axis, 20, 15)
    assert np.abs(drawn - expected).max() <= 6, drawn
    assert [t.get_text() for t in axis.get_legend().get_texts()] == ["b"]  # the classes present only
    plt.close(figure)


def test_heat_leaves_cold_regions_of_the_image_visible() -> None:
    image = np.full((20, 20, 3), 200, np.uint8)
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0  # a coarse map: stretched over the image
    figure, axis = plt.subplots(figsize=(3, 3), dpi=100)
    heat_overlay(axis, image, heat)
    axis.axis("off")
    assert np.abs(pixel(figure, axis, 17, 17) - 200).max() <= 3  # cold: the image as it is
    assert np.abs(pixel(figure, axis, 1, 1) - 200).max() > 60  # hot: coloured
    plt.close(figure)


def test_legends_sit_outside_the_axes() -> None:
    figure, axis = plt.subplots()
    axis.plot([0, 1], [0, 1], label="fold 0")
    legend = legend_outside(axis)
    figure.canvas.draw()
    assert legend.get_window_extent().x0 >= axis.get_window_extent().x1
    assert legend_outside(plt.subplots()[1]) is None  # nothing labelled: no legend
    figure_png(figure)


def study_with(trials: int, parameters: int) -> optuna.Study:
    """`trials` completed trials over a learning rate (which drives the score) and `parameters` - 1 others."""
    study = optuna.create_study(direction="maximize", study_name="s")
    space = {
        "train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
        "model.backbone": optuna.distributions.CategoricalDistribution(["resnet18", "convnext_nano"]),
        **{f"train.other_{i}": optuna.distributions.FloatDistribution(0, 1) for i in range(parameters - 2)},
    }
    rng = np.random.default_rng(0)
    for _ in range(trials):
        params = {
            name: str(rng.choice(d.choices)) if name == "model.backbone" else float(rng.uniform(0, 1))
            for name, d in space.items()
        }
        params["train.lr"] = float(10 ** rng.uniform(-4, -1))
        value = 0.5 + 0.1 * np.log10(params["train.lr"]) + rng.normal(0, 0.01)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=space, value=float(value)))
    return study


@pytest.mark.parametrize(
    ("trials", "parameters", "note", "plot"),
    [
        (MIN_IMPORTANCE_TRIALS - 1, 2, True, False),  # too few to rank: said instead of the plot
        (MIN_IMPORTANCE_TRIALS + 2, 2, False, True),
        (MIN_IMPORTANCE_TRIALS + 2, 6, True, True),  # 2 trials a parameter: the plot, and a word beside it
    ],
)
def test_tune_report_says_when_importances_rest_on_too_few_trials(
    trials: int, parameters: int, note: bool, plot: bool
) -> None:
    study = study_with(trials, parameters)
    page = tune_report(study, trials_frame(study), "accuracy", Path("configs/experiment/tuned.yaml"))
    assert ("too few trials" in page) == note
    assert ('alt="parameter_importances"' in page) == plot
    assert 'alt="optimisation_history"' in page and 'alt="slices"' in page
    assert "run -e tuned" in page and f"{trials} trials: {trials} complete" in page
    # The trials table scrolls inside the page's width instead of running off it.
    assert "<div class='table'><table" in page and re.search(r"\.table\{max-width:100%;overflow-x:auto\}", page)


def test_report_pages_keep_tables_and_figures_within_the_page() -> None:
    style = Report("r").html()
    assert "max-width:1200px" in style and "img{max-width:100%}" in style and "overflow-wrap:break-word" in style


def test_long_categories_of_the_tune_slices_are_named_by_their_file_and_cut() -> None:
    from ..tools.tune_report import tick_label

    assert tick_label("configs/aug/light.yaml") == "light.yaml"
    assert tick_label("configs/aug/a_much_longer_pipeline_name.yaml") == "a_much_longer_pip…"
    assert tick_label("256") == "256"
