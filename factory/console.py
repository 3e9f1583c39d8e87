"""What a finished command prints: a short table a person reads at a glance."""
from __future__ import annotations

from typing import Mapping


def print_metrics(title: str, sections: Mapping[str, Mapping[str, float]], footer: str = "") -> None:
    """A table with one row per metric name and one column per section (val, test, baseline)."""
    from rich.console import Console
    from rich.table import Table

    names: list[str] = []
    for values in sections.values():
        for key in values:
            name = key.split("/", 1)[-1]
            if name not in names:
                names.append(name)
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for section in sections:
        table.add_column(section, justify="right")
    for name in names:
        cells = []
        for section, values in sections.items():
            value = values.get(f"{section}/{name}", values.get(name))
            cells.append("" if value is None else f"{value:.4f}")
        table.add_row(name, *cells)
    console = Console(stderr=False)
    console.print(table)
    if footer:
        console.print(footer, highlight=False, soft_wrap=True)
