"""`analyze`: a self-contained HTML report (and the same on W&B) of a run: the CV headline, key findings and
advice, learning curves, the task's own sections (tasks/<task>/analysis.py) and CV against the leaderboard."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..config import Config
from ..core.ledger import read_ledger
from ..core.report.analysis import (
    Analysis,
    curve_findings,
    cv_lb_correlation,
    headline,
    learning_curves,
    read_histories,
    require_file,
    tta_choice_notes,
)
from ..core.report.page import Report, scatter_plot
from ..core.runs import RunPaths, read_json, write_json, write_text
from ..core.tracking import create_tracker
from ..tasks import SPEC, create_task, read_train_table


def _training_sections(analysis: Analysis) -> str:
    """Learning curves from each fold's history.csv; returns the headline (CV ± std from metrics.json)."""
    paths, report = analysis.paths, analysis.report
    metrics = read_json(paths.metrics) if paths.metrics.is_file() else {}
    if metrics.get("cv_mean") is None:
        return f"no CV in {paths.metrics.name} (an ensemble or a run still training): OOF score below"
    analysis.numbers.update({k: metrics[k] for k in ("cv_mean", "cv_std", "folds") if k in metrics})
    histories = read_histories(paths.root)
    metric = metrics.get("metric", analysis.config.metric)
    report.section("Learning curves", "per fold: losses and the validation metric by epoch (fold_K/history.csv)")
    if histories:
        report.image("learning_curves", learning_curves(histories, metric))
        analysis.advice.extend(curve_findings(histories, metric, metrics.get("higher_is_better", True)))
    else:
        report.parts.append("<p><em>none: no fold_K/history.csv in this run</em></p>")
    return headline(metrics)


def _leaderboard_section(analysis: Analysis) -> None:
    ledger = read_ledger(analysis.config.output_dir)
    if not len(ledger):
        return
    correlation = cv_lb_correlation(ledger)
    analysis.numbers["cv_lb_correlation"] = correlation
    scored = ledger.dropna(subset=["public_lb"])
    analysis.report.section(
        "Submissions: CV versus public leaderboard",
        f"correlation {correlation:.3f}"
        if correlation is not None
        else "record LB scores with the `lb` command to see the correlation (3 or more)",
    )
    analysis.report.table("submissions", ledger)
    if len(scored):
        analysis.report.image("cv_vs_lb", scatter_plot(scored["cv"], scored["public_lb"], "CV", "public LB"))
    if correlation is not None and correlation < 0.5:
        analysis.findings.append(f"CV and public LB correlate weakly ({correlation:.2f}): check the fold scheme")


def _finite(value: Any) -> Any:
    """NaN (a class without examples, a size without boxes) as null: analysis.json stays strict JSON."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _write(analysis: Analysis) -> Path:
    """reports/analysis.html, analysis.json and one PNG per figure; the same images and tables to W&B."""
    out = analysis.paths.root / "reports"
    html_path = write_text(out / "analysis.html", analysis.report.html())
    numbers = {**analysis.numbers, "findings": analysis.findings, "advice": analysis.advice}
    write_json(out / "analysis.json", _finite(numbers))
    for name, png in analysis.report.images.items():
        (out / f"{name}.png").write_bytes(png)
    tracker = create_tracker(analysis.config, analysis.paths.root, "analysis", "analysis")
    tracker.log_report(
        {name: out / f"{name}.png" for name in analysis.report.images}, analysis.report.tables, analysis.confusion
    )
    tracker.summary({"oof_score": analysis.numbers.get("oof_score")})
    tracker.finish()
    return html_path


def analyze(config: Config) -> Path:
    """Write <run>/reports/analysis.html and analysis.json, and log the same to W&B; returns the HTML path."""
    paths = RunPaths.from_config(config)
    part = SPEC.parts.analysis()  # the task's own sections: analyze_run, and its OOF file's name
    require_file(paths.root / part.OOF_FILE, paths, "OOF predictions")
    classes = read_json(require_file(paths.classes, paths, "class list"))
    task = create_task(config, classes)
    table = read_train_table(config.data)
    analysis = Analysis(config, paths, task, table, Report(f"Analysis of {paths.root.name}"))
    lead = _training_sections(analysis)
    if paths.tta.is_file():
        findings, advice = tta_choice_notes(read_json(paths.tta))
        analysis.findings.extend(findings)
        analysis.advice.extend(advice)
    part.analyze_run(analysis)
    _leaderboard_section(analysis)
    oof = analysis.numbers.get("oof_score")
    lead = lead if oof is None else f"{lead}; OOF {config.metric} {oof:.4f}"
    analysis.report.summary(lead, analysis.findings, analysis.advice)
    return _write(analysis)
