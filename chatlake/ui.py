"""Terminal output for the CLI: progress bars on long work, readable tables (rich, imported lazily).

Chat content is untrusted: whatever goes to the terminal passes `safe_text` (no control sequence reaches the
terminal) and reaches rich as `Text`, never as a string rich would read as markup (`[link=...]`, `[/x]`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


@contextmanager
def progress_bar(label: str, unit: str, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr when it is a terminal; `advance(done, total)` updates it."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done, all_: progress.update(task, completed=done, total=all_)


#: What a terminal would act on rather than show: C0 controls but newline and tab (ESC starts CSI/OSC sequences:
#: clear the screen, set the window title, hyperlinks), DEL, C1 controls (U+009B is a one-character CSI), and the
#: bidirectional overrides and isolates that reorder how the rest of a line reads ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe_text(text: str) -> str:
    """`text` with each character a terminal would act on shown as its escape (`\\x1b`, `\\u202e`), so the
    output is what the data holds, visibly, and cannot clear the screen, retitle the window or fake a link."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    """A table a person can read: rich's box-drawn table in a terminal, plain aligned text otherwise (a file, a
    pipe, a cron mail), which `grep`, `cut` and `diff` read and no box-drawing character garbles."""
    from rich.console import Console

    numeric = [any(isinstance(r.get(c), int | float) and not isinstance(r.get(c), bool) for r in rows)
               for c in columns]
    cells = [[safe_text(_cell(r.get(c))) for c in columns] for r in rows]
    header = [safe_text(c) for c in columns]
    console = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)  # wide when not measurable
    if not console.is_terminal:  # rich's own test: a TTY, or TTY_COMPATIBLE/FORCE_COLOR say to treat it as one
        sys.stdout.write(plain_table(header, cells, numeric, None if title is None else safe_text(title)))
        return
    from rich.table import Table
    from rich.text import Text  # Text, not str: rich would read "[...]" in a str as markup

    table = Table(title=None if title is None else Text(safe_text(title)), title_justify="left")
    for name, right in zip(header, numeric, strict=True):
        table.add_column(Text(name), justify="right" if right else "left", overflow="fold")
    for row in cells:
        table.add_row(*(Text(v) for v in row))
    console.print(table)


def plain_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool],
                title: str | None = None) -> str:
    """Columns two spaces apart, numbers right-aligned, a dashed rule under the header; the title first. A cell's
    newlines and tabs are shown as `\\n` and `\\t`, so that each row stays one line."""
    rows = [[v.replace("\n", "\\n").replace("\t", "\\t") for v in r] for r in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if right else v.ljust(w)
                         for v, w, right in zip(values, widths, numeric, strict=True)).rstrip() + "\n"

    rule = "  ".join("-" * w for w in widths) + "\n"
    return (f"{title}\n" if title else "") + line(header) + rule + "".join(line(r) for r in rows)


def print_json(document: Any) -> None:
    """One JSON document on stdout (`--format json`: for cron jobs and monitoring). ASCII only: any character of
    the data that a terminal would act on is a \\u escape, never the character."""
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
