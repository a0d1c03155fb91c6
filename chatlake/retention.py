"""Retention: keep personal data no longer than the settings say.

`RAW_RETENTION_DAYS` covers what people sent as received (raw, quarantine, kept imports, media);
`TABLE_RETENTION_DAYS` the derived layers (enriched partitions and the ETL's own `etl/dt=…` records). Unset: keep
forever. The ETL's mentions index (`etl/mentions/`: which raw keys can mention which ids) describes raw data and
goes with it, by `RAW_RETENTION_DAYS`. A day D is "older than N days" when D < today - N (UTC): with N = 30,
today-30 is kept and today-31 goes. Objects without a `dt=` in their key (kept imports) go by their age. `audit/`
never expires.

Locally `chatlake prune` deletes what is older; in AWS the same split is an S3 lifecycle configuration
(`expiry_rules`, applied by `chatlake deploy` and by `chatlake prune --lifecycle`). S3 expires by object age, which
for `dt=D/` objects is D (they are written that day) except an ETL re-run of an old day or a redaction by `forget`,
which start the object's age again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chalicelib import layout
from chalicelib.settings import ConfigError
from chalicelib.storage import Storage

RULE_PREFIX = "chatlake-expire-"
RAW_DERIVED = (*layout.RAW_LAYERS, layout.MENTIONS_ROOT)  # what RAW_RETENTION_DAYS covers


def expiry_rules(raw_days: int | None, table_days: int | None, root: str = "") -> list[dict[str, Any]]:
    """S3 lifecycle rules for the two settings, one per layer prefix (under the lake's `root` prefix)."""
    rules = []
    for days, prefixes in ((raw_days, RAW_DERIVED), (table_days, layout.TABLE_LAYERS)):
        if days:
            rules += [{"ID": f"{RULE_PREFIX}{(root + p).strip('/').replace('/', '-')}", "Status": "Enabled",
                       "Filter": {"Prefix": root + p}, "Expiration": {"Days": days}} for p in prefixes]
    return rules


def check(raw_days: int | None, table_days: int | None) -> None:
    """Tables kept for less time than raw data would be rebuilt from it by the next catch-up: refuse it."""
    if raw_days and table_days and table_days < raw_days:
        raise ConfigError(f"TABLE_RETENTION_DAYS ({table_days}) is shorter than RAW_RETENTION_DAYS ({raw_days}): "
                          "the ETL would rebuild the expired tables from the raw data still kept; make it at least "
                          f"{raw_days} or unset")


@dataclass
class PrunePlan:
    today: date
    raw_days: int | None
    table_days: int | None
    keys: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # per layer


def _older(storage: Storage, roots: tuple[str, ...], days: int, today: date) -> Iterator[str]:
    cutoff = today - timedelta(days=days)
    oldest_mtime = datetime.combine(cutoff, datetime.min.time(), UTC).timestamp()
    for root in roots:
        for obj in storage.list(root):
            day = layout.day_of(obj.key)
            if day is not None:
                if day < cutoff:
                    yield obj.key
            elif obj.mtime < oldest_mtime:  # no dt= in the key (kept imports): by age
                yield obj.key


def plan(storage: Storage, raw_days: int | None, table_days: int | None, today: date | None = None) -> PrunePlan:
    """What `prune` deletes: nothing for an unset setting."""
    check(raw_days, table_days)
    p = PrunePlan(today or datetime.now(UTC).date(), raw_days, table_days)
    seen: set[str] = set()
    for days, roots in ((raw_days, RAW_DERIVED), (table_days, layout.TABLE_LAYERS)):
        if days:
            for key in _older(storage, roots, days, p.today):
                if key in seen:  # etl/mentions/ is under both settings' prefixes
                    continue
                seen.add(key)
                p.keys.append(key)
                layer = key.split("/", 1)[0]
                p.counts[layer] = p.counts.get(layer, 0) + 1
    return p


def prune(storage: Storage, p: PrunePlan) -> int:
    """Delete the plan's keys (a killed prune is finished by the next one: it plans again)."""
    for key in p.keys:
        storage.delete(key)
    return len(p.keys)


def apply_lifecycle(s3: Any, bucket: str, root: str, raw_days: int | None, table_days: int | None) -> list[dict]:
    """Put the expiry rules on the bucket, keeping its other rules (deploy's old-version rule, the owner's own) and
    replacing chatlake's earlier expiry rules. Returns the rules now in force."""
    check(raw_days, table_days)
    try:
        current = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except Exception as e:
        if getattr(e, "response", {}).get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
            raise
        current = []
    ours = expiry_rules(raw_days, table_days, root)
    kept = [r for r in current if not str(r.get("ID", "")).startswith(RULE_PREFIX)
            or not str((r.get("Filter") or {}).get("Prefix", "")).startswith(root)]
    rules = kept + ours
    if rules:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    elif current:
        s3.delete_bucket_lifecycle(Bucket=bucket)
    return rules
