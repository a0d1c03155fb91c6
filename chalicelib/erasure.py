"""The erasure deny list: salted hashes of forgotten identifiers, applied by the ETL (and imports) so that a
re-delivered old body (a platform retry, a re-imported export) cannot bring a forgotten person back.

Written by `chatlake forget` (`chatlake/forget.py`) under `audit/erasure/deny/`, one object per identifier, never
the identifier itself. The hash is SHA-256 over a domain tag, a salt and the identifier, so it never equals the
`PII_MODE=hash` value of the same identifier (the tables' hashed ids cannot be joined to the deny list). The salt is
`PII_SALT` when `PII_MODE=hash` (a secret outside the lake), else a random salt kept in the lake
(`audit/erasure/salt.json`); each entry names which, so a later change of mode keeps the old entries working.
An entry may also carry `run`, the same salted hash of the identifier's digit run where that differs from the
identifier (a BSUID, a negative chat id): the ETL's mentions index (`chalicelib.mentions`) files that run nowhere.
Light: hashlib and json only (it runs inside the ETL function).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from chalicelib import layout
from chalicelib.schema import Message, Status
from chalicelib.storage import NotFound, Storage

log = logging.getLogger("chatlake.erasure")

#: What a redacted value becomes in the raw layer: strings, and integers (Telegram ids) as 0, an id no one has.
MARKER = "[erased]"
MARKER_INT = 0
PERSON = "person"  # sender, private chat, status recipient
CHAT = "chat"  # a private chat as a whole (its rows, statuses sent to it), not the person's group messages
LAKE_SALT = "lake"


def salt_mark(pii_salt: str | None) -> str:
    """Which salt an entry is hashed with, without revealing it."""
    if not pii_salt:
        return LAKE_SALT
    return "pii:" + hashlib.sha256(b"chatlake-erasure-salt\x00" + pii_salt.encode()).hexdigest()[:16]


def subject_hash(salt: str, value: str) -> str:
    """The deny list's hash of one identifier (domain-separated from `pii.hasher`)."""
    return hashlib.sha256(b"chatlake-erasure\x00" + salt.encode() + b"\x00"
                          + value.encode("utf-8", "surrogatepass")).hexdigest()


def lake_salt(storage: Storage, create: bool = False) -> str | None:
    """The lake-local salt (made on first use by `forget`; the ETL only reads it)."""
    try:
        return json.loads(storage.get(layout.erasure_salt_key()))["salt"]
    except NotFound:
        if not create:
            return None
    salt = secrets.token_hex(32)
    storage.put(layout.erasure_salt_key(), json.dumps({"salt": salt}).encode(), overwrite=False)
    return json.loads(storage.get(layout.erasure_salt_key()))["salt"]  # a concurrent first writer may have won


def salt_for(storage: Storage, pii_salt: str | None, create: bool = False) -> tuple[str, str]:
    """(salt, its mark) for new entries: PII_SALT in hash mode, else the lake's own."""
    if pii_salt:
        return pii_salt, salt_mark(pii_salt)
    salt = lake_salt(storage, create=create)
    if salt is None:
        raise NotFound(layout.erasure_salt_key())
    return salt, LAKE_SALT


def deny_digest(storage: Storage) -> str:
    """Names the deny list's content ("" when empty): entries are named by their hash and never change."""
    keys = [k for k in storage.keys(layout.deny_prefix()) if k.endswith(".json")]
    return hashlib.sha256("\n".join(keys).encode()).hexdigest() if keys else ""


@dataclass
class DenyList:
    """The loaded deny list: hashes per (kind, salt mark), and one hasher per salt this run can resolve."""

    digest: str = ""
    entries: dict[str, set[str]] = field(default_factory=dict)  # "<kind> <salt mark>" -> hashes
    unresolved: int = 0  # entries whose salt is not available (PII_SALT changed or unset): cannot be applied
    checks: list[tuple[str, Callable[[str | None], str | None], set[str]]] = field(default_factory=list, repr=False)
    runs: dict[str, set[str]] = field(default_factory=dict)  # salt mark -> hashes of the digit runs filed
    run_checks: list[tuple[Callable[[str | None], str | None], set[str]]] = field(default_factory=list, repr=False)

    def __bool__(self) -> bool:
        return bool(self.checks)

    def compile(self, salts: dict[str, str]) -> DenyList:
        checks = self.checks
        for key, hashes in self.entries.items():
            kind, mark = key.split(" ", 1)
            if mark not in salts:
                self.unresolved += len(hashes)
                continue
            checks.append((kind, _hasher(salts[mark]), hashes))
        self.run_checks += [(_hasher(salts[mark]), hashes) for mark, hashes in self.runs.items() if mark in salts]
        return self

    def drops_message(self, m: Message) -> bool:
        """The row is a forgotten person's (sender, or their private chat), or of a forgotten private chat."""
        private = m.chat_type == "private"
        for kind, h, hashes in self.checks:
            if private and h(m.chat_id) in hashes:
                return True
            if kind == PERSON and (h(m.sender_id) in hashes or (m.sender_phone and h(m.sender_phone) in hashes)):
                return True
        return False

    def drops_status(self, s: Status) -> bool:
        return any(h(s.recipient_id) in hashes for _, h, hashes in self.checks)

    def drops_run(self, run: str) -> bool:
        """A digit run of a forgotten identifier: the ETL's mentions index (`chalicelib.mentions`) leaves it out."""
        return any(h(run) in hashes for h, hashes in self.run_checks)


def _hasher(salt: str) -> Callable[[str | None], str | None]:
    @lru_cache(maxsize=1 << 16)
    def h(value: str | None) -> str | None:
        return None if value is None else subject_hash(salt, value)

    return h


def load(storage: Storage, pii_salt: str | None) -> DenyList:
    """The lake's deny list, ready to apply (empty, and one listing only, when nothing was ever forgotten)."""
    keys = [k for k in storage.keys(layout.deny_prefix()) if k.endswith(".json")]
    deny = DenyList(hashlib.sha256("\n".join(keys).encode()).hexdigest() if keys else "")
    if not keys:
        return deny
    for key in keys:
        try:
            entry = json.loads(storage.get(key))
            deny.entries.setdefault(f"{entry['kind']} {entry['salt']}", set()).add(entry["hash"])
            # the identifier's digit run as the mentions index files it ("run"; the hash itself for plain digits)
            deny.runs.setdefault(entry["salt"], set()).add(entry.get("run") or entry["hash"])
        except NotFound:
            continue
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable deny-list entry %s: skipped", key)
    salts: dict[str, str] = {}
    if pii_salt:
        salts[salt_mark(pii_salt)] = pii_salt
    if any(k.endswith(" " + LAKE_SALT) for k in deny.entries):
        found = lake_salt(storage)
        if found:
            salts[LAKE_SALT] = found
    deny.compile(salts)
    if deny.unresolved:
        log.warning("%d erasure deny-list entries are hashed with a PII_SALT this run does not have: they cannot be "
                    "applied (set PII_MODE=hash with the PII_SALT used when they were written)", deny.unresolved)
    return deny
