"""The submissions ledger (`outputs/submissions.csv`): every submission written, its CV and its public LB."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

LEDGER_COLUMNS = ["file", "time", "experiment", "cv", "public_lb", "kaggle", "message"]


def read_ledger(output_dir: Path) -> pd.DataFrame:
    """`output_dir/submissions.csv`: every submission written, its CV, and its public LB once recorded."""
    path = output_dir / "submissions.csv"
    if not path.is_file():
        return pd.DataFrame(columns=LEDGER_COLUMNS)
    ledger = pd.read_csv(path, dtype={"file": str, "experiment": str, "kaggle": str, "message": str})
    return ledger.reindex(columns=[*LEDGER_COLUMNS, *(c for c in ledger.columns if c not in LEDGER_COLUMNS)])


def ledger_rows(ledger: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The ledger as text for a table: the file name `lb` takes, its run, CV and public LB (and the Kaggle upload
    columns once any submission was uploaded); blanks where nothing is recorded, never NaN."""

    def text(value: object, number: bool = False) -> str:
        if value is None or pd.isna(value):
            return ""
        return f"{float(value):.4f}" if number else str(value)

    uploaded = bool(ledger["kaggle"].notna().any() or ledger["message"].notna().any())
    columns = ["submission", "experiment", "CV", "public LB", *(["kaggle", "message"] if uploaded else [])]
    rows = [
        [Path(str(row.file)).name, text(row.experiment), text(row.cv, True), text(row.public_lb, True)]
        + ([text(row.kaggle), text(row.message)] if uploaded else [])
        for row in ledger.itertuples(index=False)
    ]
    return columns, rows
