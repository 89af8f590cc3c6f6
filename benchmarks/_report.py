"""Printing and saving benchmark results: text tables, ``<suite>.json``, ``<suite>.md``, ``<suite>.svg`` (+ PNG).

The SVG bar chart is drawn by hand so the benchmarks need no plotting package; when matplotlib happens to be
importable a PNG of the same chart is written as well.
"""

from __future__ import annotations

import html
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# chart: {group: {row: {series: value}}}
Chart = dict[str, dict[str, dict[str, float | None]]]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "x":
        return f"{value:.2f}x"
    if kind == "ms":
        return f"{value:,.1f}"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


@dataclass
class Table:
    """A titled table; ``kinds`` per column: "" (auto), "x" (ratio, printed 1.23x) or "ms" (one decimal)."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    kinds: list[str] = field(default_factory=list)

    def _cells(self) -> list[list[str]]:
        kinds = self.kinds or [
            "x" if "/" in name and "ns" not in name and not name.endswith("/s") else "" for name in self.columns
        ]
        return [[_cell(value, kind) for value, kind in zip(row, kinds, strict=True)] for row in self.rows]

    def text(self) -> str:
        cells = self._cells()
        widths = [max(len(column), *(len(row[i]) for row in cells)) for i, column in enumerate(self.columns)]

        def line(values: Sequence[str]) -> str:
            first = values[0].ljust(widths[0])
            rest = (value.rjust(width) for value, width in zip(values[1:], widths[1:], strict=True))
            return "  ".join([first, *rest])

        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        return "\n".join([self.title, rule, line(self.columns), rule, *(line(row) for row in cells), rule])

    def markdown(self) -> str:
        cells = self._cells()
        header = "| " + " | ".join(self.columns) + " |"
        align = "|" + "|".join([":---", *(["---:"] * (len(self.columns) - 1))]) + "|"
        body = ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join([f"### {self.title}", "", header, align, *body])


def _targets_text(targets: list[dict[str, Any]]) -> list[str]:
    lines = []
    for target in targets:
        value = target["value"]
        shown = "-" if value is None else f"{value:.2f}"
        lines.append(f"{target['status']:4}  {target['target']}  (measured {shown})")
    return lines


def _svg_chart(chart: Chart, title: str) -> str:
    """Horizontal grouped bars on a log scale, one block per group, a dashed line at 1.0."""
    series = sorted({name for rows in chart.values() for values in rows.values() for name in values})
    palette = ["#2b7bba", "#e8743b", "#19a979", "#945ecf", "#ed4a7b"]
    values = [v for rows in chart.values() for vs in rows.values() for v in vs.values() if v and v > 0]
    if not values:
        return ""
    low = math.log10(min(0.5, min(values) * 0.8))
    high = math.log10(max(2.0, max(values) * 1.25))
    label_w, plot_w, bar_h, gap = 190, 560, 11, 8
    width = label_w + plot_w + 80

    def x_of(value: float) -> float:
        return label_w + (math.log10(value) - low) / (high - low) * plot_w

    parts: list[str] = []
    y = 40
    for group, rows in chart.items():
        parts.append(f'<text x="10" y="{y + 4}" font-weight="bold">{html.escape(group)}</text>')
        y += 14
        top = y
        for row, row_values in rows.items():
            parts.append(
                f'<text x="{label_w - 6}" y="{y + bar_h * len(series) / 2 + 4}" text-anchor="end">{html.escape(row)}</text>'
            )
            for index, name in enumerate(series):
                value = row_values.get(name)
                if value and value > 0:
                    x1 = x_of(value)
                    start = x_of(10**low)
                    parts.append(
                        f'<rect x="{start:.1f}" y="{y}" width="{max(x1 - start, 1):.1f}" height="{bar_h - 1}" '
                        f'fill="{palette[index % len(palette)]}"/>'
                    )
                    parts.append(f'<text x="{x1 + 3:.1f}" y="{y + bar_h - 2}" font-size="9">{value:.3g}</text>')
                y += bar_h
            y += gap
        one = x_of(1.0)
        parts.append(
            f'<line x1="{one:.1f}" y1="{top - 4}" x2="{one:.1f}" y2="{y - gap + 2}" stroke="#333" stroke-dasharray="3,3"/>'
        )
        y += 16
    legend = []
    for index, name in enumerate(series):
        lx = label_w + index * 120
        legend.append(f'<rect x="{lx}" y="{y}" width="10" height="10" fill="{palette[index % len(palette)]}"/>')
        legend.append(f'<text x="{lx + 14}" y="{y + 9}">{html.escape(name)}</text>')
    height = y + 30
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
            f'<text x="10" y="20" font-size="13">{html.escape(title)} (log scale)</text>',
            *parts,
            *legend,
            "</svg>",
        ]
    )


def _png_chart(chart: Chart, title: str, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series = sorted({name for rows in chart.values() for values in rows.values() for name in values})
    fig, axes = plt.subplots(len(chart), 1, figsize=(9, 0.35 * sum(len(r) for r in chart.values()) * len(series) + 1.5))
    axes_list = list(axes) if len(chart) > 1 else [axes]
    for ax, (group, rows) in zip(axes_list, chart.items(), strict=True):
        labels = list(rows)
        for index, name in enumerate(series):
            ys = [i * (len(series) + 1) + index for i in range(len(labels))]
            ax.barh(ys, [rows[label].get(name) or 0 for label in labels], label=name)
        ax.set_yticks([i * (len(series) + 1) + (len(series) - 1) / 2 for i in range(len(labels))], labels)
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_title(group)
        ax.invert_yaxis()
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def run_meta(started: float, quick: bool, **details: Any) -> dict[str, Any]:
    """What every results file records about its run: interpreter, platform, mode, duration, and ``details``."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "quick": quick,
        **details,
        "seconds": round(time.perf_counter() - started, 1),
    }


def write_results(
    suite: str,
    *,
    meta: dict[str, Any],
    data: dict[str, Any],
    tables: list[Table],
    targets: list[dict[str, Any]],
    chart: Chart | None = None,
    chart_title: str = "",
    notes: list[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Print the tables and target lines, and write ``<suite>.json/.md/.svg`` (``.png`` with matplotlib)."""
    directory = Path(out_dir) if out_dir is not None else RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for table in tables:
        print()
        print(table.text())
    for note in notes or []:
        print(f"note: {note}")
    if targets:
        print()
        print("targets (a report, not an assertion):")
        for line in _targets_text(targets):
            print(f"  {line}")
    meta_line = ", ".join(f"{key}={value}" for key, value in meta.items())
    print(f"\n[{suite}] {meta_line}")

    payload = {"suite": suite, "meta": meta, **data, "targets": targets, "notes": notes or []}
    (directory / f"{suite}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")

    md = [f"# Benchmark: {suite}", "", f"_{meta_line}_", ""]
    for table in tables:
        md += [table.markdown(), ""]
    if notes:
        md += ["## Notes", "", *(f"- {note}" for note in notes), ""]
    if targets:
        md += ["## Targets (report, not assertion)", "", *(f"- {line}" for line in _targets_text(targets)), ""]
    written = [f"{suite}.json", f"{suite}.md"]
    if chart:
        md += [f"![{suite} chart]({suite}.svg)", ""]
        svg = _svg_chart(chart, chart_title or suite)
        if svg:
            (directory / f"{suite}.svg").write_text(svg + "\n")
            written.append(f"{suite}.svg")
        if _png_chart(chart, chart_title or suite, directory / f"{suite}.png"):
            written.append(f"{suite}.png")
    (directory / f"{suite}.md").write_text("\n".join(md))
    print(f"[{suite}] wrote {', '.join(str(directory / name) for name in written)}")
    return directory
