"""`podium new --from`: read a competition's files (a folder or a zip) and propose the template's answers, each
with the reason it was chosen; what the files cannot tell (metric, backbone) is left to copier's questions."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.errors import PodiumError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
RLE = re.compile(r"^\s*\d+ \d+( \d+ \d+)*\s*$")
BOX_LIST = re.compile(r"^\s*\[?\s*-?[\d.]+(\s*[,\s]\s*-?[\d.]+){3}\s*\]?\s*$")
NUMBER = re.compile(r"^\s*-?\d+(\.\d+)?([eE]-?\d+)?\s*$")
LABEL_NAME = re.compile(r"class(?!_?id$)|label|category|target|diagnosis", re.IGNORECASE)
ROWS_READ = 2000  # rows of each CSV looked at: enough to tell columns apart, fast on million-row files
# Names of four box columns in each format, lower-case (VinBigData: x_min..y_max; YOLO exports: x_center..).
BOX_NAMES = {
    "xyxy": [("x_min", "xmin", "x1", "left"), ("y_min", "ymin", "y1", "top"), ("x_max", "xmax", "x2", "right"),
             ("y_max", "ymax", "y2", "bottom")],
    "cxcywh": [("x_center", "xc", "cx", "x_c"), ("y_center", "yc", "cy", "y_c"), ("width", "w"), ("height", "h")],
    "xywh": [("x", "x_min", "xmin", "left"), ("y", "y_min", "ymin", "top"), ("width", "w", "bbox_width"),
             ("height", "h", "bbox_height")],
}  # fmt: skip


@dataclass
class Table:
    path: Path
    columns: list[str]
    rows: list[dict[str, str]]

    def values(self, column: str) -> list[str]:
        return [row[column] for row in self.rows if row.get(column) not in (None, "")]


@dataclass
class Findings:
    """Answers for the template, the reason for each, and the folder they are relative to."""

    root: Path
    answers: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def propose(self, key: str, value: Any, reason: str) -> None:
        self.answers[key] = value
        self.reasons.append(f"{key}={value}: {reason}")


def read_table(path: Path) -> Table:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [row for _, row in zip(range(ROWS_READ), reader, strict=False)]
            return Table(path, list(reader.fieldnames or []), rows)
    except (UnicodeDecodeError, csv.Error) as error:
        raise PodiumError(f"{path}: not a readable CSV ({error})") from error


def image_folders(root: Path) -> dict[str, list[Path]]:
    """Folders under `root` (relative, POSIX) holding images directly, with those images; two levels deep."""
    found: dict[str, list[Path]] = {}
    for folder in [root, *root.glob("*/"), *root.glob("*/*/")]:
        if not folder.is_dir() or any(part.startswith((".", "__")) for part in folder.relative_to(root).parts):
            continue
        images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if images:
            found[folder.relative_to(root).as_posix() or "."] = images
    return found


def class_folder_parent(folders: dict[str, list[Path]]) -> str | None:
    """The folder whose sub-folders (two or more) hold the images: the one-folder-per-class layout."""
    parents = Counter(str(Path(name).parent.as_posix()) for name in folders if "/" in name)
    best = [parent for parent, count in parents.most_common() if count >= 2]
    return best[0] if best else None


def stem(value: str) -> str:
    name = Path(value.strip()).name
    return name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in IMAGE_SUFFIXES else name


def matching_folder(ids: list[str], folders: dict[str, list[Path]], exclude: str = "") -> tuple[str, float] | None:
    """The image folder holding the most of `ids` (by file stem), with the share found."""
    if not ids:
        return None
    wanted = {stem(value) for value in ids}
    scored = [(len(wanted & {p.stem for p in images}) / len(wanted), name) for name, images in folders.items()]
    scored = [(share, name) for share, name in scored if share > 0 and "mask" not in name.lower() and name != exclude]
    if not scored:
        return None
    share, name = max(scored)
    return name, share


def id_column(table: Table, folders: dict[str, list[Path]]) -> tuple[str, str, float] | None:
    """(column, image folder, share of its values found as images) for the column naming the images."""
    best = None
    for column in table.columns:
        match = matching_folder(table.values(column)[:500], folders)
        if match and (best is None or match[1] > best[2]):
            best = (column, match[0], match[1])
    return best if best and best[2] >= 0.5 else None


def rle_column(table: Table) -> str | None:
    for column in table.columns:
        values = table.values(column)
        if values and sum(bool(RLE.match(v)) for v in values) / len(values) > 0.9:
            return column
    return None


def edge_length(mask: Any) -> int:
    return int((mask[:, 1:] != mask[:, :-1]).sum() + (mask[1:, :] != mask[:-1, :]).sum())


def rle_order(table: Table, rle: str, ids: str, images: list[Path]) -> tuple[str, str]:
    """F (column-major) or C (row-major): the order in which the training runs draw the more compact shapes
    (shorter outlines), over up to 20 encoded images; F, Kaggle's usual, when they cannot tell."""
    import numpy as np
    from PIL import Image

    by_stem = {p.stem: p for p in images}
    edges = {"F": 0, "C": 0}
    rows = [row for row in table.rows if RLE.match(row.get(rle) or "") and stem(row[ids]) in by_stem][:20]
    for row in rows:
        with Image.open(by_stem[stem(row[ids])]) as picture:
            width, height = picture.size
        runs = [int(v) for v in row[rle].split()]
        flat = np.zeros(width * height, dtype=bool)
        for start, length in zip(runs[0::2], runs[1::2], strict=True):
            flat[max(start - 1, 0) : start - 1 + length] = True
        for order in edges:
            edges[order] += edge_length(flat.reshape((height, width), order=order))  # type: ignore[call-overload]
    if edges["C"] < edges["F"]:
        return "C", f"decoded row-major the runs outline shapes {edges['F'] / edges['C']:.1f}x more compactly"
    if edges["F"] < edges["C"]:
        return "F", f"decoded column-major the runs outline shapes {edges['C'] / edges['F']:.1f}x more compactly"
    return "F", "Kaggle's usual; the runs look alike in both orders"


def box_format_from_values(boxes: list[list[float]]) -> tuple[str, bool, str]:
    """(format, normalised, reason) from value ranges: a third number below the first means a width, not x_max."""
    normalised = bool(boxes) and max(max(box) for box in boxes) <= 1.0
    if any(box[2] < box[0] or box[3] < box[1] for box in boxes):
        if all(box[0] - box[2] / 2 >= -1e-6 and box[1] - box[3] / 2 >= -1e-6 for box in boxes) and normalised:
            return "cxcywh", normalised, "fractions with centres at least half a width from the border (YOLO-like)"
        return "xywh", normalised, "the third number is below the first in some boxes: a width (COCO-like)"
    return "xyxy", normalised, "the third and fourth numbers always exceed the first two (x_max, y_max)"


def named_box_columns(columns: list[str]) -> tuple[list[str], str] | None:
    lower = {column.lower(): column for column in columns}
    for box_format, names in BOX_NAMES.items():
        picked = [next((lower[n] for n in options if n in lower), None) for options in names]
        if all(picked):
            return [str(p) for p in picked], box_format
    return None


def class_column(table: Table, skip: set[str]) -> str | None:
    """A label column: a name saying class or label, else the first text column with repeated values."""
    candidates = [c for c in table.columns if c not in skip]
    for column in candidates:
        if LABEL_NAME.search(column):
            return column
    for column in candidates:
        values = table.values(column)
        if values and len(set(values)) < max(2, len(values) // 2) and not all(NUMBER.match(v) for v in values):
            return column
    return None


def _find_tables(root: Path) -> tuple[Table | None, list[Table]]:
    csvs = sorted(p for p in [*root.glob("*.csv"), *root.glob("*/*.csv")] if not p.name.startswith("."))
    sample = next((p for p in csvs if "sample" in p.name.lower() and "submission" in p.name.lower()), None)
    sample = sample or next((p for p in csvs if "submission" in p.name.lower()), None)
    others = [read_table(p) for p in csvs if p != sample]
    others.sort(key=lambda t: (not t.path.stem.lower().startswith("train"), t.path.name))
    return (read_table(sample) if sample else None), others


def _coco(root: Path) -> tuple[Path, dict] | None:
    for path in sorted([*root.glob("*.json"), *root.glob("*/*.json")]):
        if path.stat().st_size > 2_000_000_000:
            continue
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and {"images", "annotations", "categories"} <= set(data):
            return path, data
    return None


def _voc(root: Path) -> Path | None:
    for folder in [root, *root.glob("*/"), *root.glob("*/*/")]:
        xml = sorted(folder.glob("*.xml"))[:5] if folder.is_dir() else []
        if xml and any("<bndbox>" in p.read_text(errors="ignore") for p in xml):
            return folder
    return None


def _mask_folder(folders: dict[str, list[Path]], images: str | None) -> str | None:
    if images is None:
        return None
    stems = {p.stem for p in folders[images]}
    for name, files in folders.items():
        if "mask" in name.lower() and len(stems & {p.stem for p in files}) >= 0.5 * len(files):
            return name
    return None


def _mask_pair(folders: dict[str, list[Path]]) -> tuple[str, str] | None:
    """(images, masks): a folder named like masks whose files are named like another folder's images."""
    for images in folders:
        if "mask" not in images.lower() and (masks := _mask_folder(folders, images)) is not None:
            return images, masks
    return None


def _mask_values(files: list[Path]) -> tuple[str, str]:
    from PIL import Image

    seen: set[int] = set()
    for path in files[:20]:
        with Image.open(path) as mask:
            seen |= {int(v) for _, v in (mask.convert("L").getcolors(256) or [])}
    if len(seen - {0}) <= 1 and max(seen, default=0) > 1:
        return "binary", f"the masks hold only 0 and {max(seen)}"
    return "index", f"the masks hold the values {sorted(seen)[:12]} (0 background, k class k)"


def _image_size(task: str, images: list[Path]) -> tuple[int, str] | None:
    """A multiple of 32 at or above the median image side, when smaller than the template's default."""
    from PIL import Image

    sides = []
    for path in images[:200]:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
        except OSError:
            continue
    if not sides:
        return None
    median = sorted(sides)[len(sides) // 2]
    default = 224 if task == "classification" else 512
    proposed = max(32, -(-median // 32) * 32)
    if proposed >= default:
        return None
    return proposed, f"the median image side is {median} px (the default {default} would upsample)"


def inspect_competition(root: Path) -> Findings:
    """Answers proposed from the files under `root`; raises PodiumError when no layout fits."""
    if not root.is_dir():
        raise PodiumError(f"--from {root}: not a folder or a zip file")
    found = Findings(root)
    folders = image_folders(root)
    if not folders:
        raise PodiumError(f"--from {root}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or 2 levels down")
    sample, tables = _find_tables(root)
    title = re.sub(r"[-_]+", " ", root.name).strip().title() or "My Competition"
    found.propose("project_name", title, f"the folder's name, {root.name}")
    sample_ids = None
    if sample is not None:
        found.propose("sample_submission", sample.path.relative_to(root).as_posix(), "its name")
        match = id_column(sample, folders)
        if match:
            column, folder, share = match
            sample_ids = column
            found.propose("test_dir", folder, f"holds {share:.0%} of the sample submission's {column} values")
            found.propose("id_column", column, f"{sample.path.name}'s column naming the test images")
    train_images = _layout(found, root, folders, sample, tables)
    size = _image_size(found.answers["task"], train_images)
    if size:
        found.propose("image_size", *size)
    if sample_ids is None and "id_column" not in found.answers:
        found.reasons.append("id_column: no sample submission names the test images; copier asks")
    return found


def _layout(
    found: Findings, root: Path, folders: dict[str, list[Path]], sample: Table | None, tables: list[Table]
) -> list[Path]:
    """Set task, layout and the layout's answers; returns the training images."""
    train = None
    for table in tables:
        match = id_column(table, folders)
        if match:
            train = (table, *match)
            break
    coco, voc = _coco(root), _voc(root)
    parent = class_folder_parent(folders)
    sample_rle = rle_column(sample) if sample else None
    if coco is not None:
        path, data = coco
        polygons = sample_rle is not None and any(a.get("segmentation") for a in data["annotations"][:100])
        task, layout = ("segmentation", "coco_polygons") if polygons else ("detection", "coco")
        found.propose(
            "task", task, f"{path.name} is COCO JSON" + (" and the sample wants RLE masks" if polygons else "")
        )
        found.propose("data_layout", layout, "COCO annotations")
        found.propose("annotations", path.relative_to(root).as_posix(), "holds images, annotations and categories")
        names = {Path(image["file_name"]).stem for image in data["images"][:500]}
        images = max(folders, key=lambda name: len(names & {p.stem for p in folders[name]}))
        _set_images(found, images, folders, "holds the JSON's file names")
        if polygons:
            found.propose("rle_column", sample_rle, "the sample submission's run-length column")
    elif voc is not None:
        found.propose("task", "detection", f"{voc.relative_to(root).as_posix() or '.'} holds Pascal VOC XML files")
        found.propose("data_layout", "voc", "XML files with <bndbox>")
        found.propose("annotations", voc.relative_to(root).as_posix() or ".", "the XML folder")
        names = {p.stem for p in voc.glob("*.xml")}
        images = max(folders, key=lambda name: len(names & {p.stem for p in folders[name]}))
        _set_images(found, images, folders, "holds the images the XML files name")
    elif train is not None and (masks := _mask_folder(folders, train[2])) is not None:
        _masks(found, folders, train[0], train[2], masks, sample_rle)
    elif train is not None:
        _csv_layouts(found, folders, sample, sample_rle, *train)
    elif (pair := _mask_pair(folders)) is not None:
        _masks(found, folders, None, pair[0], pair[1], sample_rle)
    elif parent is not None:
        found.propose("task", "classification", f"{parent} has one sub-folder of images per class")
        found.propose("data_layout", "folders", "no train CSV; class folders")
        _set_images(found, parent, folders, "the class folders' parent")
    else:
        raise PodiumError(
            f"--from {root}: no layout fits (a train CSV naming the images, COCO JSON, VOC XML, class folders "
            "or a masks folder); answer the questions instead (podium new without --from)"
        )
    train_images = found.answers.get("image_dir", ".")
    return [p for name, files in folders.items() if name == train_images or name.startswith(f"{train_images}/")
            for p in files]  # fmt: skip


def _set_images(found: Findings, folder: str, folders: dict[str, list[Path]], reason: str) -> None:
    found.propose("image_dir", folder, reason)
    pool = [p for name, files in folders.items() if name == folder or name.startswith(f"{folder}/") for p in files]
    suffix, count = Counter(p.suffix.lower() for p in pool).most_common(1)[0]
    found.propose("image_ext", suffix, f"{count} of {len(pool)} images there")
    if "test_dir" not in found.answers:
        test = next(
            (n for n in folders if "test" in n.lower() and n != folder and not n.startswith(f"{folder}/")), None
        )
        if test:
            found.propose("test_dir", test, "its name")


def _masks(
    found: Findings, folders: dict[str, list[Path]], table: Table | None, images: str, masks: str, rle: str | None
) -> None:
    found.propose("task", "segmentation", f"{masks} holds masks named like the images in {images}")
    found.propose("data_layout", "masks", "a mask image per training image")
    found.propose("masks_dir", masks, "its name and file names")
    found.propose("mask_values", *_mask_values(folders[masks]))
    _set_images(found, images, folders, "holds the images the masks are named after")
    if rle:
        found.propose("rle_column", rle, "the sample submission's run-length column")
    if table is not None:
        found.reasons.append(f"{table.path.name} is not needed: the masks are files")


def _csv_layouts(
    found: Findings, folders: dict[str, list[Path]], sample: Table | None, sample_rle: str | None,
    table: Table, ids: str, images: str, share: float,
) -> None:  # fmt: skip
    name = table.path.relative_to(found.root).as_posix()
    rle = rle_column(table)
    boxes = [
        c for c in table.columns if c != ids and table.values(c) and all(BOX_LIST.match(v) for v in table.values(c))
    ]
    named = named_box_columns([c for c in table.columns if c != ids])
    if "id_column" in found.answers and found.answers["id_column"] != ids:
        found.reasons.append(f"id_column: {name} calls it {ids}, the sample {found.answers['id_column']}; {ids} kept")
    found.propose("id_column", ids, f"{name}'s column naming {share:.0%} of the images in {images}")
    found.propose("train_csv", name, "the CSV naming the training images")
    if rle:
        found.propose("task", "segmentation", f"{name}'s column {rle} holds run-length encodings")
        found.propose("data_layout", "rle_csv", "masks as run-length encodings per row")
        found.propose("rle_column", rle, "run-length values")
        found.propose("rle_order", *rle_order(table, rle, ids, folders[images]))
        shared = [c for c in (sample.columns if sample else []) if c in table.columns and c not in (ids, rle)]
        found.propose("target_columns", shared[0] if shared else "", "the class column of the train CSV and sample"
                      if shared else "one row per image: no class column in the sample submission")  # fmt: skip
        mode = "multilabel" if shared else "multiclass"
        found.propose("segmentation_mode", mode, "classes per row may overlap" if shared else "one mask per image")
    elif boxes or named:
        columns, box_format, reason = _boxes(table, boxes, named)
        found.propose("task", "detection", f"{name} holds boxes ({', '.join(columns)})")
        found.propose("data_layout", "boxes_csv", "one box per row")
        found.propose("box_columns", ",".join(columns), "box numbers")
        found.propose("box_format", box_format[0], reason)
        found.propose("box_normalized", box_format[1], "every number is at most 1" if box_format[1] else "pixels")
        label = next((c for c in table.columns if c not in {ids, *columns} and LABEL_NAME.search(c)), None)
        found.propose("target_columns", label or "", "the class of each box" if label else "no class column: one class")
    else:
        _classification(found, table, ids, sample)
    _set_images(found, images, folders, f"holds the images {name} names")


def _boxes(table: Table, lists: list[str], named: tuple[list[str], str] | None) -> tuple[list[str], tuple, str]:
    if lists:
        values = [[float(v) for v in re.findall(r"-?[\d.]+(?:[eE]-?\d+)?", text)] for text in table.values(lists[0])]
        box_format, normalised, reason = box_format_from_values(values)
        return [lists[0]], (box_format, normalised), reason
    assert named is not None
    columns, box_format = named
    rows = [
        [float(row[c]) for c in columns] for row in table.rows if all(NUMBER.match(row.get(c) or "") for c in columns)
    ]
    normalised = bool(rows) and max(max(r) for r in rows) <= 1.0
    return columns, (box_format, normalised), f"the column names {', '.join(columns)}"


def _classification(found: Findings, table: Table, ids: str, sample: Table | None) -> None:
    name = table.path.name
    found.propose("task", "classification", f"{name} names images and holds no boxes, masks or RLE")
    found.propose("data_layout", "csv", "a train CSV and an image folder")
    others = [c for c in table.columns if c != ids]
    binary = [c for c in others if table.values(c) and set(table.values(c)) <= {"0", "1", "0.0", "1.0"}]
    wanted = [c for c in (sample.columns if sample else []) if c in others]
    if len(binary) >= 2 and (not wanted or set(wanted) <= set(binary)):
        columns = wanted if len(wanted) >= 2 else binary
        rows = [sum(row[c] in ("1", "1.0") for c in columns) for row in table.rows]
        one_hot = all(count == 1 for count in rows)
        found.propose("target_columns", ",".join(columns), "0/1 columns, one per class")
        found.propose("label_mode", "multi_label", "0/1 columns are read as multi-label"
                      + (" (here one-hot: exactly one 1 per row)" if one_hot else ""))  # fmt: skip
        return
    label = next((c for c in wanted if c not in binary), None) or class_column(table, {ids})
    if label is None:
        raise PodiumError(f"--from: {table.path}: no label column besides {ids}; give -d target_columns=NAME")
    values = table.values(label)
    tagged = sum(" " in v.strip() for v in values) > 0.05 * max(len(values), 1)
    found.propose(
        "target_columns", label, "the train CSV's label column" + (" shared with the sample" if wanted else "")
    )
    found.propose("label_mode", "multi_label" if tagged else "single_label",
                  "space-separated tags" if tagged else "one label per row")  # fmt: skip
