"""chatlake, the tool people type: `chatlake VERB` (CLI, query engines, report, local stack, demo, deploy).

Never packaged for Lambda: the functions import `chalicelib/` only.
"""

__version__ = "0.3.0"

from pathlib import Path

#: The checkout the tool runs from: `sql/`, `.chalice/`, `app.py` and `.env` live there (installed editable).
PROJECT_DIR = Path(__file__).resolve().parent.parent
