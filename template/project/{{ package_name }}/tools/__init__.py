"""Tools around the pipeline: ensembles, soups, pseudo-labels, EDA, analysis, tuning, reports, benchmarks."""
