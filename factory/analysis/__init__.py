"""The notebook API: runs as DataFrames, a data config's profile (``explore``), runs and sweeps
side by side (``compare``), figures (``plots``) and predictions. The top of the line: may import
every stage below, and nothing imports it but the CLI and ``factory/__init__``."""
