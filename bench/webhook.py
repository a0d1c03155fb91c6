"""The webhook path: per-delivery handler time, and the import time of `app`.

Ours: the deployed Lambda handler (`app(event, context)`, as API Gateway invokes it) storing into a
folder lake, signature check included. Baseline: the least any webhook must do for the same bodies:
HMAC-SHA256 check + sha256 content address + atomic file write.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import tempfile
from pathlib import Path

from bench.common import alternate, import_seconds, report, timed

SECRET = "bench-app-secret"


def bodies(n: int) -> list[bytes]:
    from chatlake.local.synthetic import deliveries

    return [d.body for d in deliveries(n, seed=7, sources=("whatsapp",))]


def run(n: int = 2000, rounds: int = 7) -> bool:
    os.environ.update({"WHATSAPP_APP_SECRET": SECRET})
    from app import app
    from chalicelib import runtime
    from chalicelib.webhook import whatsapp_signature

    payloads = bodies(n)
    events = [{
        "requestContext": {"httpMethod": "POST", "resourcePath": "/whatsapp", "path": "/whatsapp"},
        "headers": {"content-type": "application/json", "x-hub-signature-256": whatsapp_signature(SECRET, b)},
        "pathParameters": None, "stageVariables": {}, "multiValueQueryStringParameters": None,
        "body": b.decode(), "isBase64Encoded": False,
    } for b in payloads]
    # Both write into the same folder: RAM-backed by default (/dev/shm), so the ratio measures our code and not
    # the disk's mood (this machine's virtual disk varies 10x from minute to minute); BENCH_DIR=/path to choose.
    default = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = Path(tempfile.mkdtemp(prefix="chatlake-bench-", dir=os.environ.get("BENCH_DIR", default)))

    def ours(i: int) -> float:
        lake = work / f"ours{i}"
        os.environ["DATALAKE_URL"] = str(lake)
        runtime.storage()  # built once per process in Lambda too
        elapsed = timed(lambda: [app(e, None) for e in events])
        assert len(list(lake.rglob("*.json"))) == len(set(payloads))
        return elapsed / n

    def baseline(i: int) -> float:
        folder = work / f"base{i}" / "raw" / "source=whatsapp" / "dt=2026-11-24"

        def handle(body: bytes, signature: str) -> None:
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(expected.encode(), signature.encode())
            path = folder / (hashlib.sha256(body).hexdigest() + ".json")
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, path)

        signed = [(b, e["headers"]["x-hub-signature-256"]) for b, e in zip(payloads, events, strict=True)]
        return timed(lambda: [handle(b, s) for b, s in signed]) / n

    try:
        handler, bare = alternate(ours, baseline, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = report(f"webhook per delivery ({n} signed WhatsApp deliveries, folder lake in {work.parent})", handler,
                bare, 1.5, "us", "HMAC + sha256 + atomic write")
    imports = [(import_seconds("import app"), import_seconds("import chalice, boto3")) for _ in range(7)]
    app_s = sorted(a for a, _ in imports)[3]
    base_s = sorted(b for _, b in imports)[3]
    return report("import time of app", app_s, base_s, 1.2, "ms", "import chalice, boto3") and ok
