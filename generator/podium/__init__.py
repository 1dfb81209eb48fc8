"""podium: scaffold a Kaggle-style computer-vision competition repository from a Copier template."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("podium")
except PackageNotFoundError:  # running from a source checkout without an install
    __version__ = "0.0.0"
