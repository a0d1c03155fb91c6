"""`chatlake ingest-sns FILE…`: AWS End User Messaging Social events exported from SNS, SQS or Lambda into the lake.

Each file holds SNS notifications in any of their wrappers, or one bare event (see `eum.messages_in`); every event is
stored by `eum.store`, the SNS function's own code, so a replay lands exactly where the function would have put it
(the day is the day it is stored, like any delivery) and what is already there is not stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chalicelib import eum
from chalicelib.storage import Storage


@dataclass
class FileResult:
    """What one file gave: events found, stored now, already in the lake; or why it could not be read."""

    file: str
    events: int = 0
    stored: int = 0
    already: int = 0
    error: str | None = None


COLUMNS = ["file", "events", "stored", "already", "error"]


def read_events(path: Path) -> list[str]:
    """The SNS message strings of one file. Raises eum.NotAnEvent (a sentence) or OSError."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # an editor's BOM is not part of any event
    except UnicodeDecodeError as e:
        raise eum.NotAnEvent(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    return eum.messages_in(text)


def ingest(paths: list[Path], storage: Storage) -> list[FileResult]:
    """Store the events of every readable file; a file that cannot be read is reported and stores nothing. Storage
    errors propagate (nothing is lost: the files are still there, and a re-run stores each event once)."""
    results = []
    for path in paths:
        result = FileResult(str(path))
        try:
            messages = read_events(path)
        except eum.NotAnEvent as e:
            result.error = str(e)
        except OSError as e:
            result.error = f"cannot read it: {e.strerror or e}"
        else:
            result.events = len(messages)
            for message in messages:
                _, new = eum.store(message, storage)
                result.stored += new
                result.already += not new
            if not messages:
                result.error = "no event in it"
        results.append(result)
    return results
