"""Pretrained weights without internet: `weights` saves what a download gives, model.weights loads it back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ..cli import app
from ..config import load_config
from ..core.errors import ModelError
from ..core.weights import load_weights_file
from ..tasks import create_task
from .conftest import TASK, WRITERS, task_overrides

CLASSES = ["class_0", "class_1"]


def test_weights_command_saves_what_model_weights_loads(tmp_path: Path, monkeypatch) -> None:
    WRITERS[TASK](tmp_path / "data")
    overrides = task_overrides(tmp_path / "data", tmp_path / "outputs")
    task_class = type(create_task(load_config(overrides), CLASSES))
    original = task_class.create_model

    def downloading(self, pretrained: bool | None = None) -> torch.nn.Module:
        """What a download gives: every parameter but the head's last one moved away from its initial value."""
        use = self.config.model.pretrained if pretrained is None else pretrained
        model = original(self, pretrained=False if self.config.model.weights is None else pretrained)
        if use and self.config.model.weights is None:
            with torch.no_grad():
                for parameter in list(model.parameters())[:-1]:
                    parameter.add_(1.0)
        return model

    monkeypatch.setattr(task_class, "create_model", downloading)
    arguments = [argument for override in overrides for argument in ("--set", override)]
    result = CliRunner().invoke(app, ["weights", str(tmp_path / "w"), *arguments])
    assert result.exit_code == 0, result.output
    config = load_config(overrides)
    named = config.detection.architecture if TASK == "detection" else config.model.backbone  # a detector by its kind
    path = tmp_path / "w" / f"{TASK}-{named.replace('/', '_')}.pt"
    assert path.is_file(), sorted((tmp_path / "w").iterdir())
    assert f"model.weights={path}" in " ".join(result.output.split()).replace(" ", "") or str(path) in result.output
    saved = torch.load(path, weights_only=True)
    names = [name for name, _ in original(create_task(load_config(overrides), CLASSES), False).named_parameters()]
    assert names[-1] not in saved and set(names[:-1]) <= set(saved)  # the random head stays out

    offline = load_config([*overrides, "model.pretrained=true", f"model.weights={path}"])
    model = create_task(offline, CLASSES).create_model()  # builds from scratch, then fills from the file
    state = model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in saved.items())
    scratch = original(create_task(load_config(overrides), CLASSES), False).state_dict()
    assert not torch.equal(state[names[0]], scratch[names[0]])


def test_a_weights_file_of_another_model_is_one_line(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    torch.save({"other.weight": torch.zeros(5, 5), "other.bias": torch.zeros(5)}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match=r"other.pt: 0 of 2 tensors fit the model \(first misfit 'other.weight'\)"):
        load_weights_file(model, tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(ModelError, match="junk.pt: not a weights file"):
        load_weights_file(model, tmp_path / "junk.pt")
    with pytest.raises(ModelError, match="missing.pt: file not found"):
        load_weights_file(model, tmp_path / "missing.pt")
    torch.save({"model": {"weight": torch.ones(2, 3), "bias": torch.ones(2)}}, tmp_path / "checkpoint.pt")
    assert load_weights_file(model, tmp_path / "checkpoint.pt") == (2, 2)  # a checkpoint's 'model' entry
    assert torch.equal(model.weight, torch.ones(2, 3))
