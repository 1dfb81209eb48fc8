"""A Kaggle-style computer-vision competition project rendered by podium."""

__version__ = "0.1.0"
