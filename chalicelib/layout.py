"""The data lake's key layout (contract section 2), in one place."""

from __future__ import annotations

import hashlib
import re
from datetime import date

SOURCES = ("telegram", "whatsapp")
TABLES = ("messages", "statuses", "rejects")
PART_NAME = "part-0.parquet"  # the one file per table and day the ETL writes

_DT_RE = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})/")
_SOURCE_RE = re.compile(r"(?:^|/)source=([a-z_]+)/")


def digest(body: bytes) -> str:
    """The content address of a delivery: a retry of the same bytes gets the same key."""
    return hashlib.sha256(body).hexdigest()


def raw_prefix(source: str, day: date) -> str:
    return f"raw/source={source}/dt={day.isoformat()}/"


def raw_key(source: str, day: date, body: bytes) -> str:
    return f"{raw_prefix(source, day)}{digest(body)}.json"


def quarantine_prefix(source: str, day: date) -> str:
    return f"quarantine/source={source}/dt={day.isoformat()}/"


def quarantine_keys(source: str, day: date, body: bytes) -> tuple[str, str]:
    """The keys of the refused bytes and of their `{"reason", "received_at", "content_type"}` note."""
    stem = f"{quarantine_prefix(source, day)}{digest(body)}"
    return f"{stem}.body", f"{stem}.json"


def enriched_prefix(table: str, day: date) -> str:
    return f"{table_prefix(table)}dt={day.isoformat()}/"


def part_key(table: str, day: date) -> str:
    return enriched_prefix(table, day) + PART_NAME


IMPORT_FILE_PREFIX = "import-"  # files of `chatlake import`: rows of another writer, which the ETL keeps


def import_part_key(table: str, day: date, export_digest: str) -> str:
    """The rows one imported export gives for a day (the day they were sent): one file per export and day, so a
    re-import replaces it instead of adding to it."""
    return enriched_prefix(table, day) + f"{IMPORT_FILE_PREFIX}{export_digest}.parquet"


def is_import_file(key: str) -> bool:
    return key.rpartition("/")[2].startswith(IMPORT_FILE_PREFIX)


def etl_prefix(day: date) -> str:
    """The ETL's own records of a day (not tables: no query engine reads them)."""
    return f"etl/dt={day.isoformat()}/"


def commit_key(day: date) -> str:
    """What the day's last complete ETL run wrote, and from which raw data (JSON)."""
    return etl_prefix(day) + "commit.json"


def versions_key(day: date) -> str:
    """Every message version and status the day's raw deliveries give, before the cross-day duplicate check
    (Parquet): what the days after it compare against."""
    return etl_prefix(day) + "versions.parquet"


def day_of(key: str) -> date | None:
    """The `dt=` partition of a key, if it has one."""
    m = _DT_RE.search(key)
    return date.fromisoformat(m.group(1)) if m else None


def source_of(key: str) -> str | None:
    m = _SOURCE_RE.search(key)
    return m.group(1) if m else None


def table_prefix(table: str) -> str:
    """Where a table's day partitions live (`enriched/<table>/`): what a query engine reads."""
    return f"enriched/{table}/"


def table_glob(table: str) -> str:
    """Every Parquet file of a table, as a glob relative to the lake's root (hive partitions `dt=...`)."""
    return f"{table_prefix(table)}dt=*/*.parquet"


INTRADAY_FILE_PREFIX = "intraday-"  # rows of an intraday run, replaced by the day's next full run


def intraday_part_key(table: str, day: date, run_id: str) -> str:
    """The rows one intraday run added to a table: one new file per run and table, in one write."""
    return enriched_prefix(table, day) + f"{INTRADAY_FILE_PREFIX}{run_id}.parquet"


def is_intraday_file(key: str) -> bool:
    return key.rpartition("/")[2].startswith(INTRADAY_FILE_PREFIX)


def runs_prefix(day: date) -> str:
    """One manifest per ETL run of the day (full or intraday): what it consumed and added, the run history."""
    return etl_prefix(day) + "runs/"


def run_key(day: date, run_id: str) -> str:
    return f"{runs_prefix(day)}{run_id}.json"


def share_prefix(day: date, shares: int) -> str:
    """Where the workers of a fanned-out full run leave their shares of the day, until the merge."""
    return etl_prefix(day) + f"shares/{shares}/"


def share_key(day: date, shares: int, index: int, table: str) -> str:
    return f"{share_prefix(day, shares)}{index}/{table}.parquet"


#: AWS End User Messaging Social: WhatsApp events from SNS, stored as received (no webhook route, no quarantine).
EUM_SOURCE = "whatsapp_eum"
#: Every source of the raw layer, in key order: what the ETL reads and `status` counts. `SOURCES` are the webhooks.
RAW_SOURCES = (*SOURCES, EUM_SOURCE)


# --- media (issue 12): the bytes of photos, voice notes, documents, ...; their table is not one of the ETL's -------

MEDIA_TABLE = "media"  # enriched/media/dt=D/: written by media capture, never by the ETL (not in TABLES)


def media_prefix(source: str, day: date) -> str:
    return f"media/source={source}/dt={day.isoformat()}/"


def media_key(source: str, day: date, sha256: str, ext: str) -> str:
    """A media file's key: content-addressed, so the same bytes sent twice on one day are one object."""
    return f"{media_prefix(source, day)}{sha256}{ext}"


IMPORTS_PREFIX = "imports/"  # exports handed to `chatlake import`, byte for byte


def import_key(source: str, export_digest: str, ext: str) -> str:
    """An imported export file, exactly as given (`result.json`, a WhatsApp `.txt` or `.zip`): content-addressed,
    so importing the same file again writes nothing new."""
    return f"{IMPORTS_PREFIX}source={source}/{export_digest}.{ext}"


def import_record_key(source: str, export_digest: str) -> str:
    """What the last import of that export wrote (JSON): the days of its `import-<digest>` files, its counts and the
    line numbers it could not read."""
    return f"{IMPORTS_PREFIX}source={source}/{export_digest}.record.json"


# --- erasure, retention and the layers other writers add (imports, media) --------------------------------------

RAW_ROOT = "raw/"
QUARANTINE_ROOT = "quarantine/"
IMPORTS_ROOT = IMPORTS_PREFIX
MEDIA_ROOT = "media/"  # captured media files: media/source=<s>/dt=D/<sha256>.<ext>
ENRICHED_ROOT = "enriched/"
ETL_ROOT = "etl/"
ERASURE_ROOT = "audit/erasure/"
#: Layers that hold what people sent, as received (RAW_RETENTION_DAYS), and what is derived (TABLE_RETENTION_DAYS).
RAW_LAYERS = (RAW_ROOT, QUARANTINE_ROOT, IMPORTS_ROOT, MEDIA_ROOT)
TABLE_LAYERS = (ENRICHED_ROOT, ETL_ROOT)


def media_table_prefix() -> str:
    return table_prefix("media")


def deny_prefix() -> str:
    """The erasure deny list: one small object per forgotten identifier, named by its salted hash."""
    return ERASURE_ROOT + "deny/"


def deny_key(subject: str) -> str:
    return f"{deny_prefix()}{subject}.json"


def erasure_salt_key() -> str:
    """The lake-local random salt of the deny list (used when PII_MODE is not hash)."""
    return ERASURE_ROOT + "salt.json"


def erasure_record_key(stamp: str, subject: str) -> str:
    """One audit record per erasure run: `audit/erasure/<UTC time>-<salted hash prefix>.json`."""
    return f"{ERASURE_ROOT}{stamp}-{subject[:16]}.json"


#: Where AWS End User Messaging Social copies a media file (`GetWhatsAppMessageMedia`) before capture hashes it
#: and stores it at its `media_key`; each fetch stages under a prefix of its own and deletes it afterwards.
MEDIA_STAGING_PREFIX = "media/_staging/"


def share_claim_key(day: date, shares: int) -> str:
    """Written once, if absent, by the fanned-out run's worker that finds every share landed: that one merges."""
    return f"{share_prefix(day, shares)}merge.claim"


#: Which raw deliveries of a day can mention which identifiers (`chalicelib.mentions`, written by the ETL, read by
#: `forget`): derived from raw data, so it expires with it (its own prefix for an S3 lifecycle rule).
MENTIONS_ROOT = ETL_ROOT + "mentions/"


def mentions_key(day: date) -> str:
    return f"{MENTIONS_ROOT}dt={day.isoformat()}/index.parquet"
