"""Every registry is a dict from the name a config uses to what it builds; `lookup` gives all of them one error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from .errors import ConfigError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, key: str) -> T:
    """registry[name], or one line naming the config key, the unknown name and every known one."""
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(f"{key}: unknown '{name}'; expected one of {', '.join(registry)}") from None
