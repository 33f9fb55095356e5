"""Stage 4, the report: a run directory scored from its predictions alone (per-class mean ± std
over folds, blast and atypical groups), compared with other runs, and written as Markdown, HTML,
JSON, CSV and pictures beside Matek et al. 2019's published table."""
