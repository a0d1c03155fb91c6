"""Terminal output for the CLI: progress bars on long work, readable tables (rich, imported lazily).

Chat content is untrusted: whatever goes to the terminal passes `safe_text` (no control sequence reaches the
terminal) and reaches rich as `Text`, never as a string rich would read as markup (`[link=...]`, `[/x]`).
"""

from __future__ import annotations

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
    """A table a person can read in a terminal (plain aligned text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def text(value: str) -> Text:  # Text, not str: rich would read "[...]" in a str as markup
        return Text(safe_text(value))

    table = Table(title=None if title is None else text(title), title_justify="left")
    for c in columns:
        numeric = any(isinstance(r.get(c), int | float) and not isinstance(r.get(c), bool) for r in rows)
        table.add_column(text(c), justify="right" if numeric else "left", overflow="fold")
    for r in rows:
        table.add_row(*(text(_cell(r.get(c))) for c in columns))
    Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(table)
