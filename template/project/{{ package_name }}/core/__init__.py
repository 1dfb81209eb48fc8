"""Machinery the stages share: the loop's runtime, run folders, readers, augmentation, TTA, tracking, errors."""
