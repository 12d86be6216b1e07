"""Reports as text: a Markdown table, and a Markdown report as one self-contained HTML page
(figures inlined). Shared by `epx analyze` and `epx sweep --show`."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

CELL_EDGE = re.compile(r"(?<!\\)\|")  # a "|" that is not escaped as "\|"


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; a "|" inside a cell is escaped ("\\|") so that it stays in its cell."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(columns), "|" + "---|" * len(columns), *map(line, rows)])


def table_cells(line: str) -> list[str]:
    """The cells of one Markdown table line, escaped "|" restored."""
    return [c.strip().replace("\\|", "|") for c in CELL_EDGE.split(line.strip().strip("|"))]


def html_report(markdown: str, figures: list[Path], title: str = "epx") -> str:
    """The Markdown report as one self-contained HTML page (figures inlined as base64)."""
    body, in_table = [], False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = table_cells(line)
            if set(line) <= {"|", "-"}:
                continue
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("!["):
            name = line[line.index("(") + 1 : -1]
            path = next((p for p in figures if p.name == name), None)
            if path is not None:
                data = base64.b64encode(path.read_bytes()).decode()
                body.append(
                    f'<p><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"></p>'
                )
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<p>{html.escape(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:"
             "collapse;margin:1em 0}td{border:1px solid #ccc;padding:2px 8px;text-align:right}"
             "img{max-width:100%}")  # fmt: skip
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")  # fmt: skip
