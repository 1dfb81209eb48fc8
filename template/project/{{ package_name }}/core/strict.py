"""The base of every config section: an unknown key is refused, an assignment validated."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def off_as_text(cls: type, value: Any) -> Any:
    return "off" if value is False else value  # YAML reads a bare `off` as false


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
