"""Settings fitted to the data and the budget (core/recipe.py): the RAM cache where it fits, the batch the budget
buys; each with its reason (the tasks' own choices are tested with their tasks)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from ..config import load_config
from ..core.recipe import cache_choice


def test_the_cache_is_kept_in_ram_only_where_it_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ..core import parallel

    config = load_config(["model.image_size=100", "model.in_chans=3"])
    task = SimpleNamespace(resizes_first=True)  # a task whose transforms resize first: cached at model.image_size
    paths = [str(tmp_path / f"{i}.png") for i in range(1000)]  # 30 MB at 100 px x 3 channels
    monkeypatch.setattr(parallel, "available_memory", lambda: 1_000_000_000)
    choice = cache_choice(config, task, paths, processes=1)
    assert choice is not None and choice.settings == {"data": {"cache": "ram"}}
    assert choice.reason == "data.cache=ram: 1000 images at 100 px take 0.03 GiB, within 40% of the 0.9 GiB free"
    tight = cache_choice(config, task, paths, processes=20)  # every fold process keeps a copy: 600 MB
    assert tight is not None and tight.settings == {"data": {"cache": "none"}} and "x 20 processes" in tight.reason
    monkeypatch.setattr(parallel, "available_memory", lambda: None)
    unknown = cache_choice(config, task, paths, processes=1)
    assert unknown is not None and unknown.settings == {"data": {"cache": "none"}}
    for chosen in ("none", "ram", "disk"):  # a cache set by hand stays
        assert cache_choice(load_config([f"data.cache={chosen}"]), task, paths, 1) is None
