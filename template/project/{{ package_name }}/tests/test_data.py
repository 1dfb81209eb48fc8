"""Reading the competition files; each bad input gets one error naming the file, row or key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ..data import ImageDataset, read_image, read_test_table, read_train_table
from ..errors import DataError
from .conftest import write_competition


def test_reads_single_label_csv(make_config) -> None:
    table = read_train_table(make_config().data)
    assert table.classes == ["blue", "green", "red"]
    assert len(table.frame) == 24
    assert table.targets.dtype == np.int64
    assert table.frame["path"].str.endswith(".png").all()


def test_reads_multi_label_tags(tmp_path, make_config) -> None:
    root = write_competition(tmp_path / "ml", multi_label=True)
    table = read_train_table(make_config("data.multi_label=true", data_root=root).data)
    assert table.targets.shape == (24, 3)
    assert table.targets.sum(axis=1).tolist() == [1, 2] * 12


def test_reads_multi_label_binary_columns(competition, make_config) -> None:
    frame = pd.read_csv(competition / "train.csv")
    for name in ("red", "green", "blue"):
        frame[name] = (frame["label"] == name).astype(int)
    frame.to_csv(competition / "train.csv", index=False)
    config = make_config("data.multi_label=true", "data.target_columns=[red,green,blue]")
    table = read_train_table(config.data)
    assert table.classes == ["red", "green", "blue"]
    assert (table.targets.sum(axis=1) == 1).all()


def test_reads_folder_per_class(tmp_path, make_config) -> None:
    for name in ("cat", "dog"):
        (tmp_path / "f" / "train" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / "f" / "train" / name / f"{i}.png")
    table = read_train_table(make_config("data.layout=folders", data_root=tmp_path / "f").data)
    assert table.classes == ["cat", "dog"]
    assert table.targets.tolist() == [0, 0, 0, 1, 1, 1]
    assert table.frame["id"].iloc[0] == "cat/0"


def test_missing_train_csv(make_config, tmp_path) -> None:
    with pytest.raises(DataError, match=r"nowhere/train\.csv: file not found"):
        read_train_table(make_config(data_root=tmp_path / "nowhere").data)


def test_unreadable_train_csv(competition, make_config) -> None:
    (competition / "train.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match=r"train\.csv: (cannot read as CSV|missing column)"):
        read_train_table(make_config().data)


def test_missing_target_column(make_config) -> None:
    with pytest.raises(DataError, match=r"train\.csv: missing column 'target' \(columns: id, label, site\)"):
        read_train_table(make_config("data.target_columns=[target]").data)


def test_missing_id_column(make_config) -> None:
    with pytest.raises(DataError, match=r"missing column 'image_id'"):
        read_train_table(make_config("data.id_column=image_id").data)


def test_missing_image_names_file_and_row(competition, make_config) -> None:
    (competition / "train" / "tr005.png").unlink()
    with pytest.raises(DataError, match=r"tr005\.png: image not found \(row 7 of .*train\.csv\)"):
        read_train_table(make_config().data)


def test_corrupt_image_names_the_file(competition) -> None:
    bad = competition / "train" / "tr003.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"tr003\.png: cannot decode image"):
        read_image(str(bad))
    dataset = ImageDataset([str(bad)], np.array([0]), lambda image: {"image": image})
    with pytest.raises(DataError, match="cannot decode"):
        dataset[0]


def test_duplicate_ids(competition, make_config) -> None:
    frame = pd.read_csv(competition / "train.csv")
    frame.loc[4, "id"] = frame.loc[1, "id"]
    frame.to_csv(competition / "train.csv", index=False)
    with pytest.raises(DataError, match=r"duplicate id 'tr001' at rows 3 and 6"):
        read_train_table(make_config().data)


def test_label_count_must_match_config(make_config) -> None:
    with pytest.raises(DataError, match=r"3 classes found .* but data.num_classes is 4"):
        read_train_table(make_config("data.num_classes=4").data)
    with pytest.raises(DataError, match=r"labels \['red'\] are not in data.classes"):
        read_train_table(make_config("data.classes=[blue,green]").data)
    # A class absent from train is allowed when data.classes names it.
    table = read_train_table(make_config("data.classes=[blue,green,red,yellow]", "data.num_classes=4").data)
    assert table.classes[-1] == "yellow"


def test_test_folder_is_sorted_by_id(make_config) -> None:
    test = read_test_table(make_config().data)
    assert test["id"].tolist() == sorted(test["id"])
    assert len(test) == 6
