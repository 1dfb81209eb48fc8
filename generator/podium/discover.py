"""`podium new --from`: read a competition's files (a folder or a zip) and propose the template's answers, each
with the reason it was chosen; what the files cannot tell (metric, backbone) is left to copier's questions."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.errors import PodiumError

# The template's own (core/data.py): a proposal for files the project would not read is a wrong proposal.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
DEFAULT_IMAGE_SIZES = {"classification": 224, "detection": 512, "segmentation": 512}  # copier.yml's image_size
RLE = re.compile(r"^\s*\d+ \d+( \d+ \d+)*\s*$")
BOX_LIST = re.compile(r"^\s*\[?\s*-?[\d.]+(\s*[,\s]\s*-?[\d.]+){3}\s*\]?\s*$")
NUMBER = re.compile(r"^\s*-?\d+(\.\d+)?([eE]-?\d+)?\s*$")
LABEL_NAME = re.compile(r"class(?!_?id$)|label|category|target|diagnosis", re.IGNORECASE)
CLASS_ID_NAME = re.compile(r"^class_?id$", re.IGNORECASE)  # second choice: VinBigData's class_name beats class_id
RLE_NAME = re.compile(r"rle|encoded|pixels|mask", re.IGNORECASE)
NO_MASK = {"", "-1"}  # what sample submissions hold in their RLE column besides runs (-1: no object)
# Words of column names that describe an image or where it came from, not its class (SIIM melanoma's patient_id,
# sex, age_approx, anatom_site_general_challenge; Global Wheat's source, width, height).
METADATA_WORDS = {
    "patient",
    "sex",
    "gender",
    "age",
    "site",
    "source",
    "width",
    "height",
    "split",
    "fold",
    "date",
    "time",
    "study",
    "series",
    "user",
    "annotator",
    "rad",
    "group",
    "dataset",
    "domain",
    "hospital",
    "institution",
    "center",
    "centre",
    "scanner",
    "device",
    "camera",
    "view",
    "path",
    "file",
    "filename",
    "url",
    "size",
    "id",
    "uuid",
}
ROWS_READ = 2000  # rows of each CSV looked at: enough to tell columns apart, fast on million-row files
SIZES_READ = 200  # images whose size is read (headers only) to check box formats against
FOLLOWS = 0.5  # correlation of (x_min, 3rd number) above which the 3rd number is x_max, not a width
# Names of four box columns in each format, lower-case (VinBigData: x_min..y_max; YOLO exports: x_center..).
BOX_NAMES = {
    "xyxy": [
        ("x_min", "xmin", "x1", "left"),
        ("y_min", "ymin", "y1", "top"),
        ("x_max", "xmax", "x2", "right"),
        ("y_max", "ymax", "y2", "bottom"),
    ],
    "cxcywh": [("x_center", "xc", "cx", "x_c"), ("y_center", "yc", "cy", "y_c"), ("width", "w"), ("height", "h")],
    "xywh": [
        ("x", "x_min", "xmin", "left", "x1", "x0", "bbox_x"),
        ("y", "y_min", "ymin", "top", "y1", "y0", "bbox_y"),
        ("width", "w", "bbox_width"),
        ("height", "h", "bbox_height"),
    ],
}


@dataclass
class Table:
    path: Path
    columns: list[str]
    rows: list[dict[str, str]]

    def values(self, column: str) -> list[str]:
        return [row[column] for row in self.rows if row.get(column) not in (None, "")]


@dataclass
class Sample:
    """The sample submission and its id column."""

    table: Table
    id: str

    @property
    def columns(self) -> list[str]:
        """The columns a submission fills: all but the id."""
        return [column for column in self.table.columns if column != self.id]

    @property
    def name(self) -> str:
        return self.table.path.name


@dataclass(frozen=True)
class Proposal:
    """An answer for the template and the reason it was chosen."""

    key: str
    value: Any
    reason: str


@dataclass(frozen=True)
class Note:
    """What the files say besides an answer (a warning, a file not needed)."""

    subject: str
    reason: str


@dataclass(frozen=True)
class Unsettled:
    """A question the files cannot settle: copier asks it; `refusal` is the error when it cannot ask (--defaults)."""

    key: str
    reason: str
    refusal: str


Finding = Proposal | Note | Unsettled


@dataclass
class Findings:
    """Answers for the template, the reason for each, the questions the files cannot settle (each with its one-line
    refusal for when nobody can be asked), and the folder they are relative to."""

    root: Path
    shown: str = ""  # the source as the user gave it (`--from comp.zip`), never a scratch folder
    answers: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    unresolved: dict[str, str] = field(default_factory=dict)

    def propose(self, key: str, value: Any, reason: str) -> None:
        self.answers[key] = value
        self.reasons.append(f"{key}={value}: {reason}")

    def note(self, subject: str, reason: str) -> None:
        self.reasons.append(f"{subject}: {reason}")

    def leave(self, key: str, reason: str, refusal: str) -> None:
        """Leave `key` to copier's question; `refusal` is the error when it cannot ask (--defaults)."""
        self.unresolved[key] = refusal
        self.note(key, f"{reason}; copier asks")

    def add(self, findings: list[Finding]) -> None:
        """Take what a detector or helper found, in order."""
        for finding in findings:
            if isinstance(finding, Proposal):
                self.propose(finding.key, finding.value, finding.reason)
            elif isinstance(finding, Note):
                self.note(finding.subject, finding.reason)
            else:
                self.leave(finding.key, finding.reason, finding.refusal)


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


@dataclass(frozen=True)
class ImageColumn:
    """A table's column naming images: the folder holding them and the share of its values found there."""

    table: Table
    column: str
    folder: str
    share: float


def id_column(table: Table, folders: dict[str, list[Path]]) -> ImageColumn | None:
    """The column naming the images, when at least half its values are found in one image folder."""
    best = None
    for column in table.columns:
        match = matching_folder(table.values(column)[:500], folders)
        if match and (best is None or match[1] > best.share):
            best = ImageColumn(table, column, *match)
    return best if best and best.share >= 0.5 else None


def rle_column(table: Table) -> str | None:
    for column in table.columns:
        values = table.values(column)
        if values and sum(bool(RLE.match(v)) for v in values) / len(values) > 0.9:
            return column
    return None


def sample_rle_column(sample: Sample) -> tuple[str, str] | None:
    """(column, why) for the sample's run-length column: by its values (runs, or empty / -1 for no object), else by
    its name."""
    for column in sample.columns:
        values = [v for v in sample.table.values(column) if v.strip() not in NO_MASK]
        if values and sum(bool(RLE.match(v)) for v in values) / len(values) > 0.9:
            return column, "its values are run-length encodings"
    named = next((column for column in sample.columns if RLE_NAME.search(column)), None)
    return (named, "its name says run-length pixels") if named else None


def edge_length(mask: Any) -> int:
    return int((mask[:, 1:] != mask[:, :-1]).sum() + (mask[1:, :] != mask[:-1, :]).sum())


def rle_mask(runs: str, height: int, width: int, order: str) -> Any:
    """The (height, width) bool mask of Kaggle runs ("start length" pairs, pixels numbered from 1) read in `order`
    (F: column-major, C: row-major), as the template decodes them; runs past the image are cut, not refused."""
    import numpy as np

    numbers = [int(v) for v in runs.split()]
    flat = np.zeros(width * height, dtype=bool)
    for start, length in zip(numbers[0::2], numbers[1::2], strict=True):
        flat[max(start - 1, 0) : start - 1 + length] = True
    return flat.reshape((height, width), order=order)  # type: ignore[call-overload]


def rle_order(table: Table, rle: str, ids: str, images: list[Path]) -> tuple[str, str]:
    """F (column-major) or C (row-major): the order in which the training runs draw the more compact shapes
    (shorter outlines), over up to 20 encoded images; F, Kaggle's usual, when they cannot tell."""
    from PIL import Image

    by_stem = {p.stem: p for p in images}
    edges = {"F": 0, "C": 0}
    rows = [row for row in table.rows if RLE.match(row.get(rle) or "") and stem(row[ids]) in by_stem][:20]
    for row in rows:
        with Image.open(by_stem[stem(row[ids])]) as picture:
            width, height = picture.size
        for order in edges:
            edges[order] += edge_length(rle_mask(row[rle], height, width, order))
    if edges["C"] < edges["F"]:
        return "C", f"decoded row-major the runs outline shapes {edges['F'] / edges['C']:.1f}x more compactly"
    if edges["F"] < edges["C"]:
        return "F", f"decoded column-major the runs outline shapes {edges['C'] / edges['F']:.1f}x more compactly"
    return "F", "Kaggle's usual; the runs look alike in both orders"


def box_format_from_values(
    boxes: list[list[float]], sizes: list[tuple[int, int]] | None = None
) -> tuple[str, bool, str]:
    """(format, normalised, reason) for boxes of four numbers, `sizes` (width, height) being their images'.

    A third number below the first is a width. Else both x_min y_min x_max y_max and x y w h keep the order: a format
    that puts boxes outside their images is out, then x_max grows with x_min where a width is not tied to x.
    """
    normalised = bool(boxes) and max(max(box) for box in boxes) <= 1.0
    if any(box[2] < box[0] or box[3] < box[1] for box in boxes):
        if all(box[0] - box[2] / 2 >= -1e-6 and box[1] - box[3] / 2 >= -1e-6 for box in boxes) and normalised:
            return "cxcywh", normalised, "fractions with centres at least half a width from the border (YOLO-like)"
        return "xywh", normalised, "the third number is below the first in some boxes: a width (COCO-like)"
    outside = _outside_as_xywh(boxes, sizes, normalised) if sizes else 0
    if outside:
        reason = f"as x y w h {outside} of {len(boxes)} boxes would end outside their images; as x1 y1 x2 y2 they fit"
        return "xyxy", normalised, reason
    follows = _follows(boxes)
    if follows is None:
        return "xyxy", normalised, "the third and fourth numbers always exceed the first two (x_max, y_max)"
    relation = f"the 3rd and 4th numbers {{}} with the 1st and 2nd (correlation {follows:.2f})"
    if follows >= FOLLOWS:
        return "xyxy", normalised, relation.format("grow") + ": x_max, y_max"
    return "xywh", normalised, relation.format("do not grow") + ": a width and a height (COCO-like)"


def _outside_as_xywh(boxes: list[list[float]], sizes: list[tuple[int, int]], normalised: bool) -> int:
    """How many boxes, read as x y w h, end past their image's right or bottom border (by more than a pixel)."""
    slack = 1e-3 if normalised else 1.0
    limits = [(1.0, 1.0) if normalised else size for size in sizes]
    return sum(
        x + w > width + slack or y + h > height + slack
        for (x, y, w, h), (width, height) in zip(boxes, limits, strict=True)
    )


def _follows(boxes: list[list[float]]) -> float | None:
    """The weaker of the correlations (1st, 3rd number) and (2nd, 4th); None for fewer than 3 boxes or constants."""
    from statistics import StatisticsError, correlation

    if len(boxes) < 3:
        return None
    try:
        return min(correlation([b[axis] for b in boxes], [b[axis + 2] for b in boxes]) for axis in (0, 1))
    except StatisticsError:  # a constant column: nothing to tell from
        return None


def named_box_columns(columns: list[str]) -> tuple[list[str], str] | None:
    lower = {column.lower(): column for column in columns}
    for box_format, names in BOX_NAMES.items():
        picked = [next((lower[n] for n in options if n in lower), None) for options in names]
        if all(picked):
            return [str(p) for p in picked], box_format
    return None


def class_column(table: Table, skip: set[str], ids: str | None = None) -> tuple[str | None, str]:
    """(column, why) for the class column of a label or box table; (None, why not) when no column or several fit.

    A name saying class or label wins; else the one text column with few distinct values that is not an id, a
    number or metadata (by its name, or holding one value per image where images have several rows).
    """
    columns = [c for c in table.columns if c not in skip]
    for pattern in (LABEL_NAME, CLASS_ID_NAME):
        named = [c for c in columns if pattern.search(c)]
        if named:
            return named[0], "its name says class or label"
    fits = [(column, count) for column in columns if (count := _class_values(table, column, ids))]
    if len(fits) == 1:
        return fits[0][0], f"its text takes {fits[0][1]} values (not an id, a number or per-image metadata)"
    if fits:
        return None, f"several text columns could be ({', '.join(column for column, _ in fits)})"
    return None, "no column is named like a class or holds a few text values that are not metadata"


def _words(column: str) -> set[str]:
    """A column name's words, lower-case: ImageId and image_id give {image, id}."""
    return {word.lower() for word in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", column)}


def _class_values(table: Table, column: str, ids: str | None) -> int:
    """The number of distinct values of a column that could hold classes; 0 when it cannot."""
    values = table.values(column)
    distinct = set(values)
    if _words(column) & METADATA_WORDS or not values or all(NUMBER.match(v) for v in values):
        return 0
    if not 2 <= len(distinct) <= max(2, len(values) // 2):
        return 0
    return 0 if ids and _one_value_per_image(table, column, ids) else len(distinct)


def _one_value_per_image(table: Table, column: str, ids: str) -> bool:
    """Whether every image with several rows holds one value in `column` (per-image metadata, like a source)."""
    per_image: dict[str, set[str]] = defaultdict(set)
    rows: Counter[str] = Counter()
    for row in table.rows:
        per_image[row.get(ids) or ""].add(row.get(column) or "")
        rows[row.get(ids) or ""] += 1
    several = [image for image, count in rows.items() if count > 1]
    return bool(several) and all(len(per_image[image]) == 1 for image in several)


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
    default = DEFAULT_IMAGE_SIZES[task]
    proposed = max(32, -(-median // 32) * 32)
    if proposed >= default:
        return None
    return proposed, f"the median image side is {median} px (the default {default} would upsample)"


def inspect_competition(root: Path, shown: str | None = None) -> Findings:
    """Answers proposed from the files under `root`; raises PodiumError when no layout fits.

    Args:
        root: The competition's folder (a zip's unpacked copy).
        shown: The source as errors name it (default `--from <root>`): a zip's scratch folder is never named.
    """
    shown = shown or f"--from {root}"
    try:
        return _inspect(root, shown)
    except (OSError, PodiumError) as error:
        if isinstance(error, PodiumError) and str(error).startswith(shown):
            raise
        # A file that cannot be read: named relative to the competition, as a zip's scratch copy is gone by now.
        text = " ".join(str(error).replace(f"{root}/", "").replace(str(root), ".").split())
        raise PodiumError(f"{shown}: {text}") from error


def _inspect(root: Path, shown: str) -> Findings:
    if not root.is_dir():
        raise PodiumError(f"{shown}: not a folder or a zip file")
    found = Findings(root, shown)
    folders = image_folders(root)
    if not folders:
        raise PodiumError(f"{shown}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in it or 2 levels down")
    sample_table, tables = _find_tables(root)
    sample, settled = _sample(root, sample_table, folders)
    found.add(settled)
    train_images = _layout(found, folders, sample, tables)
    size = _image_size(found.answers["task"], train_images)
    if size:
        found.add([Proposal("image_size", *size)])
    if "id_column" not in found.answers:
        found.note("id_column", "no sample submission names the test images; copier asks")
    return found


def _sample(root: Path, table: Table | None, folders: dict[str, list[Path]]) -> tuple[Sample | None, list[Finding]]:
    """The sample submission, with test_dir and id_column from the column naming the test images."""
    if table is None:
        return None, []
    findings: list[Finding] = [Proposal("sample_submission", table.path.relative_to(root).as_posix(), "its name")]
    match = id_column(table, folders)
    if match is None:  # no test images named: its first column is taken as the id, as Kaggle's samples put it
        return Sample(table, table.columns[0] if table.columns else ""), findings
    return Sample(table, match.column), [
        *findings,
        Proposal("test_dir", match.folder, f"holds {match.share:.0%} of the sample submission's {match.column} values"),
        Proposal("id_column", match.column, f"{table.path.name}'s column naming the test images"),
    ]


def _train_table(tables: list[Table], folders: dict[str, list[Path]], sample: Sample | None) -> ImageColumn | None:
    """The CSV naming the training images; of several, the one holding what the sample asks for (train* names first
    among equals)."""
    matches = [match for table in tables if (match := id_column(table, folders))]
    if not matches:
        return None
    return max(matches, key=lambda match: _label_evidence(match.table, match.column, sample))


def _label_evidence(table: Table, ids: str, sample: Sample | None) -> int:
    """How many of the sample's columns the table holds, or 1 when the sample's columns are one column's values."""
    if sample is None:
        return 0
    shared = len({c for c in sample.columns if c in table.columns} - {ids})
    return shared or int(_column_of_class_names(table, sample.columns, {ids}) is not None)


def _column_of_class_names(table: Table, names: list[str], skip: set[str]) -> str | None:
    """The column whose values are most of `names`: a sample with a probability column per class (dog breeds)."""
    if len(names) < 2:
        return None
    for column in (c for c in table.columns if c not in skip):
        if len(set(names) & set(table.values(column))) >= 0.8 * len(names):
            return column
    return None


@dataclass(frozen=True)
class Evidence:
    """What the layout detectors look at: the competition's folder and image folders, its sample submission, what
    the sample settled already and the CSV naming its training images (_train_table)."""

    root: Path
    shown: str
    answers: dict[str, Any]
    folders: dict[str, list[Path]]
    sample: Sample | None
    train: ImageColumn | None


# A detector returns what a layout proposes when the files have that layout, else None.
Detector = Callable[[Evidence], list[Finding] | None]


def _coco_layout(evidence: Evidence) -> list[Finding] | None:
    coco = _coco(evidence.root)
    if coco is None:
        return None
    path, data = coco
    sample, folders = evidence.sample, evidence.folders
    polygons = bool(sample and sample_rle_column(sample)) and any(
        a.get("segmentation") for a in data["annotations"][:100]
    )
    task, layout = ("segmentation", "coco_polygons") if polygons else ("detection", "coco")
    names = {Path(image["file_name"]).stem for image in data["images"][:500]}
    images = max(folders, key=lambda name: len(names & {p.stem for p in folders[name]}))
    return [
        Proposal("task", task, f"{path.name} is COCO JSON" + (" and the sample wants RLE masks" if polygons else "")),
        Proposal("data_layout", layout, "COCO annotations"),
        Proposal("annotations", path.relative_to(evidence.root).as_posix(), "holds images, annotations and categories"),
        *_set_images(evidence, images, "holds the JSON's file names"),
        *(_sample_mask_columns(evidence) if polygons else []),
    ]


def _voc_layout(evidence: Evidence) -> list[Finding] | None:
    voc = _voc(evidence.root)
    if voc is None:
        return None
    shown = voc.relative_to(evidence.root).as_posix() or "."
    names = {p.stem for p in voc.glob("*.xml")}
    folders = evidence.folders
    images = max(folders, key=lambda name: len(names & {p.stem for p in folders[name]}))
    return [
        Proposal("task", "detection", f"{shown} holds Pascal VOC XML files"),
        Proposal("data_layout", "voc", "XML files with <bndbox>"),
        Proposal("annotations", shown, "the XML folder"),
        *_set_images(evidence, images, "holds the images the XML files name"),
    ]


def _train_csv_with_masks(evidence: Evidence) -> list[Finding] | None:
    train = evidence.train
    if train is None or (masks := _mask_folder(evidence.folders, train.folder)) is None:
        return None
    return _masks(evidence, train.table, train.folder, masks)


def _train_csv(evidence: Evidence) -> list[Finding] | None:
    return None if evidence.train is None else _csv_layouts(evidence, evidence.train)


def _mask_folders(evidence: Evidence) -> list[Finding] | None:
    pair = _mask_pair(evidence.folders)
    return None if pair is None else _masks(evidence, None, pair[0], pair[1])


def _class_folders(evidence: Evidence) -> list[Finding] | None:
    parent = class_folder_parent(evidence.folders)
    if parent is None:
        return None
    return [
        Proposal("task", "classification", f"{parent} has one sub-folder of images per class"),
        Proposal("data_layout", "folders", "no train CSV; class folders"),
        *_set_images(evidence, parent, "the class folders' parent"),
    ]


# Tried in order, the first that fits sets task, layout and the layout's answers: annotation files say the most, a
# train CSV next (with a masks folder beside its images: segmentation), then masks alone, then class folders.
LAYOUT_DETECTORS: tuple[Detector, ...] = (
    _coco_layout,
    _voc_layout,
    _train_csv_with_masks,
    _train_csv,
    _mask_folders,
    _class_folders,
)


def _layout(found: Findings, folders: dict[str, list[Path]], sample: Sample | None, tables: list[Table]) -> list[Path]:
    """Set task, layout and the layout's answers by the first of LAYOUT_DETECTORS that fits; returns the training
    images."""
    train = _train_table(tables, folders, sample)
    evidence = Evidence(found.root, found.shown, dict(found.answers), folders, sample, train)
    findings = next((fits for detect in LAYOUT_DETECTORS if (fits := detect(evidence)) is not None), None)
    if findings is None:
        raise PodiumError(
            f"{evidence.shown}: no layout fits (a train CSV naming the images, COCO JSON, VOC XML, class folders "
            "or a masks folder); answer the questions instead (podium new without --from)"
        )
    found.add(findings)
    if found.answers["task"] == "detection":
        found.add(_prediction_column(sample))
    train_images = found.answers.get("image_dir", ".")
    return [
        p
        for name, files in folders.items()
        if name == train_images or name.startswith(f"{train_images}/")
        for p in files
    ]


def _set_images(evidence: Evidence, folder: str, reason: str) -> list[Finding]:
    folders = evidence.folders
    pool = [p for name, files in folders.items() if name == folder or name.startswith(f"{folder}/") for p in files]
    suffix, count = Counter(p.suffix.lower() for p in pool).most_common(1)[0]
    findings: list[Finding] = [
        Proposal("image_dir", folder, reason),
        Proposal("image_ext", suffix, f"{count} of {len(pool)} images there"),
    ]
    if "test_dir" not in evidence.answers:
        test = next(
            (n for n in folders if "test" in n.lower() and n != folder and not n.startswith(f"{folder}/")), None
        )
        if test:
            findings.append(Proposal("test_dir", test, "its name"))
    return findings


def _prediction_column(sample: Sample | None) -> list[Finding]:
    """Say where the boxes go: the detection template writes PredictionStrings into the sample's one column."""
    if sample is None:
        return []
    if len(sample.columns) == 1:
        return [Note(sample.columns[0], f"{sample.name}'s one column besides {sample.id}: the boxes go there")]
    return [
        Note(
            "PredictionString",
            f"warning: {sample.name} has {len(sample.columns)} columns besides {sample.id} "
            f"({', '.join(sample.columns)}); the submission fills one column of boxes",
        )
    ]


def _sample_mask_columns(evidence: Evidence) -> list[Finding]:
    """rle_column and target_columns from the sample: its run-length column (by values, by name, or its only column
    besides the id and a class column), and its class column when it has a row per image and class."""
    sample = evidence.sample
    if sample is None:
        return []
    columns = sample.columns
    classes = [c for c in columns if LABEL_NAME.search(c) or CLASS_ID_NAME.search(c)]
    rle = sample_rle_column(sample)
    if rle is None and len(rest := [c for c in columns if c not in classes]) == 1:
        rle = rest[0], f"its only column besides {sample.id}" + (f" and {classes[0]}" if classes else "")
    if rle is None:
        return [
            Unsettled(
                "rle_column",
                f"{sample.name} has no run-length column by values or name",
                f"{evidence.shown}: cannot tell the run-length column of {sample.name} (candidates: "
                f"{', '.join(columns)}); give -d rle_column=NAME",
            )
        ]
    findings: list[Finding] = [Proposal("rle_column", rle[0], f"{sample.name}'s run-length column: {rle[1]}")]
    others = [c for c in columns if c != rle[0]]
    if not others:
        findings.append(Proposal("target_columns", "", f"{sample.name} has one row per image (no class column)"))
    elif len(others) == 1 or classes:
        klass = classes[0] if classes else others[0]
        findings.append(Proposal("target_columns", klass, f"{sample.name}'s class column: a row per image and class"))
    else:
        findings.append(
            Unsettled(
                "target_columns",
                f"{sample.name} has several columns besides the id and {rle[0]}",
                f"{evidence.shown}: cannot tell the class column of {sample.name} (candidates: {', '.join(others)}); "
                "give -d target_columns=NAME",
            )
        )
    return findings


def _masks(evidence: Evidence, table: Table | None, images: str, masks: str) -> list[Finding]:
    return [
        Proposal("task", "segmentation", f"{masks} holds masks named like the images in {images}"),
        Proposal("data_layout", "masks", "a mask image per training image"),
        Proposal("masks_dir", masks, "its name and file names"),
        Proposal("mask_values", *_mask_values(evidence.folders[masks])),
        *_set_images(evidence, images, "holds the images the masks are named after"),
        *_sample_mask_columns(evidence),
        *([Note(table.path.name, "not needed: the masks are files")] if table is not None else []),
    ]


def _csv_layouts(evidence: Evidence, train: ImageColumn) -> list[Finding]:
    table, ids, images, sample = train.table, train.column, train.folder, evidence.sample
    name = table.path.relative_to(evidence.root).as_posix()
    rle = rle_column(table)
    boxes = [
        c for c in table.columns if c != ids and table.values(c) and all(BOX_LIST.match(v) for v in table.values(c))
    ]
    named = named_box_columns([c for c in table.columns if c != ids])
    findings: list[Finding] = []
    sample_ids = evidence.answers.get("id_column")
    if sample_ids is not None and sample_ids != ids:
        findings.append(Note("id_column", f"{name} calls it {ids}, the sample {sample_ids}; {ids} kept"))
    findings.append(Proposal("id_column", ids, f"{name}'s column naming {train.share:.0%} of the images in {images}"))
    evidence_of_labels = f" and holding what {sample.name} asks for" if _label_evidence(table, ids, sample) else ""
    findings.append(Proposal("train_csv", name, "the CSV naming the training images" + evidence_of_labels))
    if rle:
        findings += _rle_csv(table, name, ids, rle, evidence.folders[images], sample)
    elif boxes or named:
        findings += _box_csv(table, name, ids, boxes, named, evidence.folders[images])
    else:
        findings += _classification(evidence, table, ids)
    return [*findings, *_set_images(evidence, images, f"holds the images {name} names")]


def _box_csv(
    table: Table, name: str, ids: str, boxes: list[str], named: tuple[list[str], str] | None, images: list[Path]
) -> list[Finding]:
    columns, box_format, reason = _boxes(table, boxes, named, ids, images)
    label, why = class_column(table, {ids, *columns}, ids)
    return [
        Proposal("task", "detection", f"{name} holds boxes ({', '.join(columns)})"),
        Proposal("data_layout", "boxes_csv", "one box per row"),
        Proposal("box_columns", ",".join(columns), "box numbers"),
        Proposal("box_format", box_format[0], reason),
        Proposal("box_normalized", box_format[1], "every number is at most 1" if box_format[1] else "pixels"),
        Proposal(
            "target_columns",
            label or "",
            f"the class of each box: {why}" if label else f"no class column, one class: {why}",
        ),
    ]


def _rle_csv(table: Table, name: str, ids: str, rle: str, images: list[Path], sample: Sample | None) -> list[Finding]:
    findings: list[Finding] = [
        Proposal("task", "segmentation", f"{name}'s column {rle} holds run-length encodings"),
        Proposal("data_layout", "rle_csv", "masks as run-length encodings per row"),
        Proposal("rle_column", rle, "run-length values"),
        Proposal("rle_order", *rle_order(table, rle, ids, images)),
    ]
    sample_rle = sample_rle_column(sample) if sample else None
    if sample is not None and sample_rle is not None and sample_rle[0] != rle:
        findings.append(
            Note(
                "rle_column",
                f"warning: {sample.name} calls it {sample_rle[0]}; data.rle_column names the "
                "column of both files, so rename one of them",
            )
        )
    shared = [c for c in (sample.columns if sample else []) if c in table.columns and c not in (ids, rle)]
    mode = "multilabel" if shared else "multiclass"
    return [
        *findings,
        Proposal(
            "target_columns",
            shared[0] if shared else "",
            "the class column of the train CSV and sample"
            if shared
            else "one row per image: no class column in the sample submission",
        ),
        Proposal("segmentation_mode", mode, "classes per row may overlap" if shared else "one mask per image"),
    ]


def _boxes(
    table: Table, lists: list[str], named: tuple[list[str], str] | None, ids: str, images: list[Path]
) -> tuple[list[str], tuple, str]:
    if lists:
        sizes = _image_sizes(table, ids, images)
        rows = [row for row in table.rows if BOX_LIST.match(row.get(lists[0]) or "")]
        sized = [row for row in rows if stem(row[ids]) in sizes]
        values = [[float(v) for v in re.findall(r"-?[\d.]+(?:[eE]-?\d+)?", row[lists[0]])] for row in sized or rows]
        box_sizes = [sizes[stem(row[ids])] for row in sized] or None
        box_format, normalised, reason = box_format_from_values(values, box_sizes)
        return [lists[0]], (box_format, normalised), reason
    assert named is not None
    columns, box_format = named
    rows = [
        [float(row[c]) for c in columns] for row in table.rows if all(NUMBER.match(row.get(c) or "") for c in columns)
    ]
    normalised = bool(rows) and max(max(r) for r in rows) <= 1.0
    return columns, (box_format, normalised), f"the column names {', '.join(columns)}"


def _image_sizes(table: Table, ids: str, images: list[Path]) -> dict[str, tuple[int, int]]:
    """(width, height) of the first images the table names, by id stem (headers only)."""
    from PIL import Image

    by_stem = {p.stem: p for p in images}
    sizes: dict[str, tuple[int, int]] = {}
    for key in dict.fromkeys(stem(value) for value in table.values(ids)):
        if len(sizes) >= SIZES_READ:
            break
        if key in by_stem:
            try:
                with Image.open(by_stem[key]) as picture:
                    sizes[key] = picture.size
            except OSError:
                continue
    return sizes


def _classification(evidence: Evidence, table: Table, ids: str) -> list[Finding]:
    """target_columns and label_mode from evidence: the sample's own column(s) found in the table, the sample's
    columns being one column's values, else a column that says it holds labels; otherwise copier asks."""
    name, sample = table.path.relative_to(evidence.root).as_posix(), evidence.sample
    layout: list[Finding] = [
        Proposal("task", "classification", f"{name} names images and holds no boxes, masks or RLE"),
        Proposal("data_layout", "csv", "a train CSV and an image folder"),
    ]
    others = [c for c in table.columns if c != ids]
    binary = [c for c in others if table.values(c) and set(table.values(c)) <= {"0", "1", "0.0", "1.0"}]
    asked, asker = (sample.columns, sample.name) if sample else ([], "")
    wanted = [c for c in asked if c in others]
    if len(wanted) >= 2 and set(wanted) <= set(binary):
        return layout + _multi_hot(table, wanted, f"{asker}'s 0/1 columns, one per class")
    if len(wanted) == 1:
        return layout + _label(table, wanted[0], f"{asker} asks for {wanted[0]}, a column of {name}")
    if (column := _column_of_class_names(table, asked, {ids})) is not None:
        return layout + _label(table, column, f"{asker}'s columns are its values (one per class)")
    if not asked and len(binary) >= 2:
        return layout + _multi_hot(table, binary, "0/1 columns, one per class")
    column, why = class_column(table, {ids})
    if column is not None:
        return layout + _label(table, column, f"{name}'s label column: {why}")
    listed = f"candidates: {', '.join(others)}" if others else f"it has no column besides {ids}"
    return [
        *layout,
        Unsettled(
            "target_columns",
            f"{name} holds no column the sample asks for, and {why}",
            f"{evidence.shown}: cannot tell the label column of {name} ({listed}); give -d target_columns=NAME",
        ),
    ]


def _multi_hot(table: Table, columns: list[str], reason: str) -> list[Finding]:
    one_hot = all(sum(row[c] in ("1", "1.0") for c in columns) == 1 for row in table.rows)
    return [
        Proposal("target_columns", ",".join(columns), reason),
        Proposal(
            "label_mode",
            "multi_label",
            "0/1 columns are read as multi-label" + (" (here one-hot: exactly one 1 per row)" if one_hot else ""),
        ),
    ]


def _label(table: Table, column: str, reason: str) -> list[Finding]:
    values = table.values(column)
    tagged = sum(" " in v.strip() for v in values) > 0.05 * max(len(values), 1)
    binary = bool(values) and set(values) <= {"0", "1", "0.0", "1.0"}
    why = "space-separated tags" if tagged else "a 0/1 column: a binary target" if binary else "one label per row"
    return [
        Proposal("target_columns", column, reason),
        Proposal("label_mode", "multi_label" if tagged else "single_label", why),
    ]
