"""Media capture: throughput against the local fake Graph API, and peak memory on a 100 MiB file.

Ours: `media_capture.run` for one day of 1,000 media messages of mixed sizes (raw scan, two requests a file, the
spooled and hashed download, the content-addressed store into a folder lake, the media table). Baseline: the least
any capture must do, with plain `urllib`: the same two requests a file, the bytes hashed (content address) and
written to a file. Memory: a fresh process
captures one 100 MiB file; its resident memory, sampled every 5 ms, above what it was before (after imports and a
first small capture).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench.common import PROJECT_DIR, alternate, report, timed

TOKEN = "bench-wa-token"
MiB = 1024 * 1024


def sizes(n: int) -> list[int]:
    """Photos and voice notes mostly, some documents, a few videos (about 230 MB in all)."""
    rng = random.Random(12)
    out = []
    for _ in range(n):
        r = rng.random()
        out.append(rng.randint(20_000, 120_000) if r < 0.8 else rng.randint(300_000, 700_000) if r < 0.98
                   else rng.randint(4 * MiB, 6 * MiB))
    return out


MEMORY_CHILD = """
import json, sys
from datetime import UTC, datetime
from chalicelib import media, media_capture as mc
from chalicelib.storage import FolderStorage
sys.path.insert(0, '.')
from tests.media_fixtures import put_raw, whatsapp_delivery
url, lake = sys.argv[1], sys.argv[2]
today = datetime.now(UTC).date()
storage = FolderStorage(lake)
http = media.Http(media.UrlPolicy(trusted=(url,)))
cap = mc.Capture(storage, {"whatsapp": media.WhatsAppMedia(http, "TOKEN", url)})
put_raw(storage, "whatsapp", today, whatsapp_delivery(today, [("wamid.warm", "image", "warm")]))
mc.run(cap, today, [today])  # imports, pyarrow, the first table: the baseline
import os, threading
def rss_kib():  # the current resident set (ru_maxrss is the lifetime peak: imports would hide the capture)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
before, peak, done = rss_kib(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_kib()); done.wait(0.005)
sampler = threading.Thread(target=sample); sampler.start()
put_raw(storage, "whatsapp", today, whatsapp_delivery(today, [("wamid.big", "video", "big")]))
mc.run(cap, today, [today])
done.set(); sampler.join()
after = max(peak[0], rss_kib())
rows, _ = mc.read_table(storage, today)
print(json.dumps({"before_kib": before, "after_kib": after, "status": rows[("whatsapp", "big")].status}))
""".replace("TOKEN", TOKEN)


def run(n: int = 1000, rounds: int = 3) -> bool:
    from chalicelib import media
    from chalicelib import media_capture as mc
    from chalicelib.storage import FolderStorage
    from chatlake.local.fake_platforms import FakeFile, FakeGraphApi, Generated

    sys.path.insert(0, str(PROJECT_DIR))
    from tests.media_fixtures import put_raw, whatsapp_delivery

    default = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = Path(tempfile.mkdtemp(prefix="chatlake-bench-media-", dir=os.environ.get("BENCH_DIR", default)))
    today = datetime.now(UTC).date()
    lengths = sizes(n)
    total = sum(lengths)
    ok = True
    with FakeGraphApi(TOKEN) as graph:
        for i, size in enumerate(lengths):
            graph.add(f"m{i}", FakeFile(Generated(size, seed=i), "image/jpeg"))
        graph.add("warm", FakeFile(b"warm", "image/jpeg"))
        graph.add("big", FakeFile(Generated(100 * MiB, seed=1), "video/mp4"))
        ids = [f"m{i}" for i in range(n)]

        def ours(r: int) -> float:
            lake = FolderStorage(work / f"ours{r}")
            for start in range(0, n, 10):  # ten messages a delivery
                put_raw(lake, "whatsapp", today, whatsapp_delivery(
                    today, [(f"wamid.{r}.{i}", "image", ids[i]) for i in range(start, min(start + 10, n))]))
            http = media.Http(media.UrlPolicy(trusted=(graph.url,)), spool=str(work / "spool"))
            cap = mc.Capture(lake, {"whatsapp": media.WhatsAppMedia(http, TOKEN, graph.url)})
            elapsed = timed(lambda: mc.run(cap, today, [today]))
            (result,) = [mc.read_table(lake, today)[0]]
            assert sum(1 for row in result.values() if row.status == "stored") == n
            shutil.rmtree(work / f"ours{r}")
            return elapsed

        def baseline(r: int) -> float:
            folder = work / f"base{r}"
            folder.mkdir()
            auth = {"Authorization": f"Bearer {TOKEN}"}

            def fetch_all() -> None:
                for media_id in ids:
                    with urllib.request.urlopen(urllib.request.Request(f"{graph.url}/v21.0/{media_id}",
                                                                       headers=auth)) as reply:
                        info = json.load(reply)
                    digest = hashlib.sha256()
                    with urllib.request.urlopen(urllib.request.Request(info["url"], headers=auth)) as reply, \
                            open(folder / media_id, "wb") as out:
                        while chunk := reply.read(256 * 1024):
                            digest.update(chunk)
                            out.write(chunk)

            elapsed = timed(fetch_all)
            shutil.rmtree(folder)
            return elapsed

        try:
            capture_s, bare_s = alternate(ours, baseline, rounds)
            print(f"media capture: {n / capture_s:,.0f} files/s, {total / MiB / capture_s:,.0f} MiB/s "
                  f"({n} files, {total / MiB:,.0f} MiB); bare urllib {n / bare_s:,.0f} files/s, "
                  f"{total / MiB / bare_s:,.0f} MiB/s", flush=True)
            ok = report(f"media capture of {n} files of mixed sizes", capture_s, bare_s, 1.3, "s",
                        "plain urllib, same downloads") and ok
            out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, graph.url, str(work / "memory")],
                                 cwd=PROJECT_DIR, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"media memory run failed (exit {out.returncode}):\n{out.stderr[-3000:]}", flush=True)
                return False
            memory = json.loads(out.stdout.strip().splitlines()[-1])
            above = (memory["after_kib"] - memory["before_kib"]) / 1024
            good = above <= 64 and memory["status"] == "stored"
            print(f"media capture of a 100 MiB file: peak RSS {memory['after_kib'] / 1024:,.0f} MiB while capturing, "
                  f"{above:,.1f} MiB above the process's baseline (goal <= 64 MiB) {'OK' if good else 'MISSED'}",
                  flush=True)
            ok = ok and good
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return ok
