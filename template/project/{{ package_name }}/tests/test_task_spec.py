"""The task's face: its SPEC's lists agree with the parts that implement them, every part module has what its
Protocol in core/task.py declares, and SPEC.check refuses what the task cannot use with one line."""

from __future__ import annotations

import pytest

from ..config import load_config, with_overrides
from ..core.errors import ConfigError
from ..core.task import AnalysisPart, BlendPart, EdaPart, LabelsPart, PlotsPart, PseudoPart
from ..tasks import SPEC

PARTS = {
    "labels": LabelsPart,
    "blend": BlendPart,
    "pseudo": PseudoPart,
    "eda": EdaPart,
    "analysis": AnalysisPart,
    "plots": PlotsPart,
}


def protocol_members(protocol: type) -> set[str]:
    declared = {*getattr(protocol, "__annotations__", {}), *vars(protocol)}
    return {name for name in declared if not name.startswith("_")}


@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_part_has_what_its_protocol_declares(part: str) -> None:
    module = getattr(SPEC.parts, part)()
    members = protocol_members(PARTS[part])
    assert members, part
    assert sorted(name for name in members if not hasattr(module, name)) == []


def test_the_spec_lists_what_the_parts_implement() -> None:
    assert set(SPEC.parts.labels().LAYOUTS) == set(SPEC.layouts)
    config = load_config()
    assert config.task == SPEC.name and config.data.layout in SPEC.layouts and config.metric in SPEC.metrics
    blend = SPEC.parts.blend()
    for method in SPEC.blend_methods:
        assert callable(blend.create_combiner(None, method, blend.parameter_grid(config.ensemble, method)[0]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": "dice" if SPEC.name != "segmentation" else "accuracy"}, rf"is not a {SPEC.name} metric; expected"),
        ({"data": {"layout": "csv" if SPEC.name != "classification" else "coco"}}, rf"is not a {SPEC.name} layout"),
        ({"ensemble": {"method": "median"}}, rf"^ensemble\.method=median: {SPEC.name} blends with "),
        ({"task": "detection" if SPEC.name != "detection" else "classification"}, rf"rendered for {SPEC.name}$"),
        ({"predict": {"tta": ["identity", "rot90"]}}, "has no inverse" if SPEC.views else None),
    ],
)
def test_check_refuses_what_the_task_cannot_use(changes: dict, message: str | None) -> None:
    config = load_config()
    SPEC.check(config)
    changed = with_overrides(config, changes)
    if message is None:  # a task that maps every view back
        SPEC.check(changed)
        return
    with pytest.raises(ConfigError, match=message):
        SPEC.check(changed)


def test_auto_and_the_old_mean_default_blend_with_the_tasks_first_method() -> None:
    assert SPEC.blend_method("auto") == SPEC.blend_methods[0]
    assert SPEC.blend_method(SPEC.blend_methods[-1]) == SPEC.blend_methods[-1]
    assert SPEC.blend_method("mean") == (SPEC.blend_methods[0] if "mean" not in SPEC.blend_methods else "mean")


def test_check_lists_a_setting_the_task_cannot_use_once_and_builds_no_model_from_it() -> None:
    from ..settings import settings_problems

    other_metric = "dice" if SPEC.name != "segmentation" else "accuracy"
    problems = settings_problems(with_overrides(load_config(), {"metric": other_metric}))
    assert [problem.where for problem in problems] == ["task"]
    assert problems[0].line.startswith(f"task: metric={other_metric} is not a {SPEC.name} metric")
