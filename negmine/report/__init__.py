"""Reports: a run's statistics and its summary, the audit against fuller judgments, the dataset card, and the
HTML/PNG report page."""
