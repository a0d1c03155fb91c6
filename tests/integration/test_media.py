"""Media capture against a fake Graph API and a fake Bot API: real HTTP servers on 127.0.0.1 serving real bytes."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import etl, layout, media, runtime
from chalicelib import media_capture as mc
from chalicelib.storage import FolderStorage, S3Storage
from chatlake.local.fake_platforms import FakeBotApi, FakeFile, FakeGraphApi, Generated, wait_for
from tests.conftest import PROJECT_DIR, keys
from tests.media_fixtures import TELEGRAM_KINDS, WHATSAPP_KINDS, put_raw, telegram_update, whatsapp_delivery

WA_TOKEN = "EAAG-wa-access-token-0123456789"
TG_TOKEN = "123456:tg-bot-token_ABCdef"
TODAY = datetime.now(UTC).date()


@pytest.fixture
def fakes():
    with FakeGraphApi(WA_TOKEN) as graph, FakeBotApi(TG_TOKEN) as bot:
        yield graph, bot


def capture(storage, graph, bot, limits=None, spool=None, **kwargs) -> mc.Capture:
    http = media.Http(media.UrlPolicy(trusted=(graph.url, bot.url)), limits or media.Limits(),
                      **({"spool": str(spool)} if spool else {}))
    return mc.Capture(storage, {"whatsapp": media.WhatsAppMedia(http, WA_TOKEN, graph.url),
                                "telegram": media.TelegramMedia(http, TG_TOKEN, bot.url)}, **kwargs)


def one_whatsapp(storage, media_id: str, kind: str = "image", day=TODAY) -> None:
    put_raw(storage, "whatsapp", day, whatsapp_delivery(day, [(f"wamid.{media_id}", kind, media_id)]))


def table(storage, day=TODAY) -> dict[str, mc.MediaRow]:
    return {media_id: row for (_, media_id), row in mc.read_table(storage, day)[0].items()}


def media_keys(storage) -> list[str]:
    return [k for k in keys(storage, "media/")]


def test_every_media_kind_of_both_platforms_is_stored_and_joins_messages(lake, fakes, tmp_path):
    graph, bot = fakes
    expected: dict[str, bytes] = {}
    wa = []
    for i, (kind, mime) in enumerate(WHATSAPP_KINDS.items()):
        data = f"whatsapp {kind} bytes {i}".encode() * (i + 1)
        graph.add(f"wa-{kind}", FakeFile(data, mime))
        expected[f"wa-{kind}"] = data
        wa.append((f"wamid.{kind}", kind, f"wa-{kind}"))
    put_raw(lake, "whatsapp", TODAY, whatsapp_delivery(TODAY, wa))
    for i, kind in enumerate(TELEGRAM_KINDS):
        data = f"telegram {kind} bytes {i}".encode() * (i + 2)
        bot.add(f"tg-{kind}", FakeFile(data, "image/jpeg" if kind == "photo" else "video/mp4"))
        expected[f"tg-{kind}"] = data
        put_raw(lake, "telegram", TODAY, telegram_update(TODAY, 100 + i, kind, f"tg-{kind}"))

    (result,) = mc.run(capture(lake, graph, bot), TODAY, [TODAY])
    rows = table(lake)
    assert result.counts["stored"] == len(expected) == len(rows) == result.found
    for media_id, data in expected.items():
        row = rows[media_id]
        assert row.status == "stored" and row.error is None, row
        assert lake.get(row.media_key) == data
        assert row.sha256 == hashlib.sha256(data).hexdigest() and row.bytes == len(data)
        source = "whatsapp" if media_id.startswith("wa-") else "telegram"
        assert row.media_key.startswith(layout.media_prefix(source, TODAY) + row.sha256)
    assert rows["wa-image"].media_key.endswith(".jpg") and rows["wa-document"].media_key.endswith(".pdf")
    assert rows["wa-voice"].media_key.endswith(".ogg") and rows["tg-photo"].media_key.endswith(".jpg")
    assert rows["tg-photo"].message_type == "photo" and rows["tg-photo"].message_id == "42:100"
    assert "tg-photo-small" not in rows  # the largest size only

    # The analyst's one join: messages_media gives each media message's key in the lake.
    if isinstance(lake, FolderStorage):
        from chatlake import query

        etl.run_day(lake, TODAY)
        engine = query.duckdb_engine(lake, tmp_path / "cache")
        got = engine.run("SELECT source, message_id, media_key, media_status FROM messages_media").records()
        assert len(got) == len(expected) and all(r["media_status"] == "stored" for r in got)
        assert {r["media_key"] for r in got} == {r.media_key for r in rows.values()}
        assert engine.run("SELECT count(*) AS n FROM media").records() == [{"n": len(expected)}]
        from chatlake import report

        html = report.build(query.duckdb_engine(lake, tmp_path / "cache"), 1)
        section = html.split("Media per type and size", 1)[1].split("</section>", 1)[0]
        assert "<td>video_note</td>" in section and "<td>document</td>" in section


def test_an_expired_download_url_is_fetched_again_fresh(lake, fakes):
    graph, bot = fakes
    graph.add("m1", FakeFile(b"photo", expired_urls=1))
    bot.add("f1", FakeFile(b"voice", "audio/ogg", expired_urls=1))
    one_whatsapp(lake, "m1")
    put_raw(lake, "telegram", TODAY, telegram_update(TODAY, 1, "voice", "f1"))
    mc.run(capture(lake, graph, bot), TODAY, [TODAY])
    rows = table(lake)
    assert rows["m1"].status == rows["f1"].status == "stored"
    assert graph.hits["lookup:m1"] == 2 and graph.hits["download:m1"] == 2
    assert bot.hits["getFile:f1"] == 2


def test_unknown_ids_fail_with_the_platforms_message_and_no_token_anywhere(lake, fakes, caplog):
    caplog.set_level(logging.DEBUG)
    graph, bot = fakes
    bot.add("gone", FakeFile(b"x", expired_urls=5))  # getFile works, the file itself is 404 each time
    one_whatsapp(lake, "nope")
    put_raw(lake, "telegram", TODAY, telegram_update(TODAY, 1, "document", "unknown-file"))
    put_raw(lake, "telegram", TODAY, telegram_update(TODAY, 2, "document", "gone"))
    mc.run(capture(lake, graph, bot), TODAY, [TODAY])
    rows = table(lake)
    assert rows["nope"].status == "failed" and "Object with ID 'nope' does not exist" in rows["nope"].error
    assert rows["unknown-file"].status == "failed" and "invalid file_id" in rows["unknown-file"].error
    assert rows["gone"].status == "failed" and "HTTP 404" in rows["gone"].error
    part = lake.get(layout.part_key("media", TODAY))
    for token in (WA_TOKEN, TG_TOKEN):
        assert token.encode() not in part and token not in caplog.text
        assert all(token not in (r.error or "") for r in rows.values())
    assert media_keys(lake) == []
    # permanent: a later run does not ask again
    mc.run(capture(lake, graph, bot), TODAY, [TODAY])
    assert graph.hits["lookup:nope"] == 1


def test_throttled_then_served_on_a_later_run_after_the_backoff(lake, fakes):
    graph, bot = fakes
    graph.add("m1", FakeFile(b"throttled photo", lookup_failures=[429]))
    bot.add("f1", FakeFile(b"throttled voice", "audio/ogg", lookup_failures=[429]))
    one_whatsapp(lake, "m1")
    put_raw(lake, "telegram", TODAY, telegram_update(TODAY, 1, "voice", "f1"))
    now = [datetime.now(UTC).timestamp()]
    cap = capture(lake, graph, bot, clock=lambda: now[0])
    (first,) = mc.run(cap, TODAY, [TODAY])
    rows = table(lake)
    assert first.counts["pending"] == 2 and "80007" in rows["m1"].error and "HTTP 429" in rows["f1"].error
    mc.run(cap, TODAY, [TODAY])  # within the backoff: not asked again
    assert graph.hits["lookup:m1"] == 1
    now[0] += mc.backoff(1) + 1
    (third,) = mc.run(cap, TODAY, [TODAY])
    assert third.counts["stored"] == 2 and table(lake)["m1"].attempts == 2


def test_pending_media_expire_when_the_window_closes(lake, fakes):
    graph, bot = fakes
    day = TODAY - timedelta(days=3)
    graph.add("m1", FakeFile(b"x", lookup_failures=[500] * 10))
    one_whatsapp(lake, "m1", day=day)
    now = [datetime.now(UTC).timestamp()]
    cap = capture(lake, graph, bot, clock=lambda: now[0])
    mc.run(cap, TODAY, [day])
    assert table(lake, day)["m1"].status == "pending"
    now[0] = mc.window_closes(day) + 1
    mc.run(cap, TODAY, [day])
    row = table(lake, day)["m1"]
    assert row.status == "expired" and "expire 7 days" in row.error and "unavailable" in row.error


def test_over_the_limit_is_stopped_while_streaming_and_nothing_partial_is_kept(lake, fakes, tmp_path):
    graph, bot = fakes
    graph.add("big", FakeFile(Generated(3 * 1024 * 1024), "video/mp4", send_length=False))
    graph.add("declared", FakeFile(Generated(3 * 1024 * 1024), "video/mp4"))
    one_whatsapp(lake, "big", "video")
    one_whatsapp(lake, "declared", "video")
    spool = tmp_path / "spool"
    mc.run(capture(lake, graph, bot, media.Limits(max_bytes=1024 * 1024), spool=spool), TODAY, [TODAY])
    rows = table(lake)
    assert rows["big"].status == "too_large" and "stopped while streaming" in rows["big"].error
    assert rows["declared"].status == "too_large" and graph.hits["download:declared"] == 0  # known before
    assert media_keys(lake) == [] and list(spool.iterdir()) == []


def test_a_content_length_that_is_no_number_is_not_believed(lake, fakes):
    """A download's Content-Length is the server's word: "²" is a digit to Python but no number; the bytes decide."""
    graph, bot = fakes
    body = b"\xff\xd8\xff\xe0 a photo"
    graph.add("odd-length", FakeFile(body, "image/jpeg", send_length=False, length_header="\u00b2"))
    one_whatsapp(lake, "odd-length")
    mc.run(capture(lake, graph, bot), TODAY, [TODAY])
    assert table(lake)["odd-length"].status == "stored" and [lake.get(k) for k in media_keys(lake)] == [body]


def test_a_sha256_mismatch_stores_nothing_and_is_retried(lake, fakes):
    graph, bot = fakes
    graph.add("m1", FakeFile(b"the real bytes", claimed_sha256="0" * 64))
    one_whatsapp(lake, "m1")
    mc.run(capture(lake, graph, bot), TODAY, [TODAY])
    row = table(lake)["m1"]
    assert row.status == "pending" and "sha256" in row.error and row.media_key is None
    assert media_keys(lake) == []


def test_a_slow_server_times_out_and_stays_pending(lake, fakes):
    graph, bot = fakes
    graph.add("slow", FakeFile(b"x" * 600_000, drip_seconds=1.0))
    one_whatsapp(lake, "slow")
    mc.run(capture(lake, graph, bot, media.Limits(timeout=0.3)), TODAY, [TODAY])
    row = table(lake)["slow"]
    assert row.status == "pending" and "0.3 s" in row.error and media_keys(lake) == []


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "https://169.254.169.254/x",
                                    "https://127.0.0.1:1/x", "https://[::1]/x"])
def test_a_redirect_to_a_private_address_is_refused(lake, fakes, target):
    graph, bot = fakes
    graph.add("m1", FakeFile(b"x", redirect_to=target))
    one_whatsapp(lake, "m1")
    mc.run(capture(lake, graph, bot), TODAY, [TODAY])
    row = table(lake)["m1"]
    assert row.status == "failed" and "refused" in row.error and media_keys(lake) == []


def test_url_policy():
    public = media.UrlPolicy(resolver=lambda host: ["93.184.216.34"])
    public.check("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1")
    for url in ("http://lookaside.fbsbx.com/x", "ftp://x/y", "https:///x"):
        with pytest.raises(media.MediaError, match="refused"):
            public.check(url)
    for address in ("10.0.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "::1", "fe80::1", "fd00::1"):
        with pytest.raises(media.MediaError, match="private, loopback or link-local"):
            media.UrlPolicy(resolver=lambda host, a=address: [a]).check("https://rebound.example/x")
    trusted = media.UrlPolicy(trusted=("http://127.0.0.1:9000",), resolver=lambda host: ["127.0.0.1"])
    trusted.check("http://127.0.0.1:9000/anything")
    with pytest.raises(media.MediaError):
        trusted.check("http://127.0.0.1:9001/other-port")


def test_the_same_bytes_under_two_ids_are_one_object(lake, fakes):
    graph, bot = fakes
    graph.add("m1", FakeFile(b"forwarded meme"))
    graph.add("m2", FakeFile(b"forwarded meme"))
    put_raw(lake, "whatsapp", TODAY, whatsapp_delivery(TODAY, [("wamid.1", "image", "m1"), ("wamid.2", "image", "m2")]))
    mc.run(capture(lake, graph, bot), TODAY, [TODAY])
    rows = table(lake)
    assert rows["m1"].media_key == rows["m2"].media_key and len(media_keys(lake)) == 1


def test_large_files_go_to_s3_in_a_multipart_upload(s3, fakes):
    graph, bot = fakes
    storage = S3Storage("chatlake-test", "lake", client=s3)
    body = Generated(12 * 1024 * 1024 + 123, seed=5)
    graph.add("video", FakeFile(body, "video/mp4"))
    one_whatsapp(storage, "video", "video")
    mc.run(capture(storage, graph, bot, part_size=5 * 1024 * 1024), TODAY, [TODAY])
    row = table(storage)["video"]
    assert row.status == "stored" and row.sha256 == body.sha256()
    head = s3.head_object(Bucket="chatlake-test", Key="lake/" + row.media_key)
    assert head["ContentLength"] == body.size and head["ETag"].strip('"').endswith("-3")  # three parts
    assert hashlib.sha256(storage.get(row.media_key)).hexdigest() == body.sha256()
    assert s3.list_multipart_uploads(Bucket="chatlake-test").get("Uploads", []) == []


def test_a_run_killed_mid_download_then_rerun_gives_one_object_and_one_row(tmp_path, fakes):
    graph, bot = fakes
    lake = FolderStorage(tmp_path / "lake")
    file = graph.add("m1", FakeFile(Generated(4 * 1024 * 1024, seed=9), "video/mp4", stall_after=1024 * 1024))
    one_whatsapp(lake, "m1", "video")
    env = {**os.environ, "DATALAKE_URL": str(tmp_path / "lake"), "GRAPH_API_URL": graph.url,
           "WHATSAPP_ACCESS_TOKEN": WA_TOKEN, "TMPDIR": str(tmp_path / "tmp"), "PYTHONPATH": str(PROJECT_DIR)}
    (tmp_path / "tmp").mkdir()
    child = subprocess.Popen([sys.executable, "-m", "chatlake", "media", "fetch", "--date", str(TODAY)],
                             env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        spooled = tmp_path / "tmp" / "chatlake-media"
        assert wait_for(lambda: spooled.is_dir() and any(p.stat().st_size > 0 for p in spooled.iterdir()), 30)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert media_keys(lake) == []  # nothing partial in the lake
    file.stall_after = None
    for _ in range(2):
        mc.run(capture(lake, graph, bot), TODAY, [TODAY], force=True)
    assert len(media_keys(lake)) == 1 and list(table(lake)) == ["m1"] and table(lake)["m1"].status == "stored"


def test_retries_of_a_delivery_on_later_days_add_no_second_row(lake, fakes):
    graph, bot = fakes
    graph.add("m1", FakeFile(b"once"))
    for day in (TODAY - timedelta(days=1), TODAY):
        put_raw(lake, "whatsapp", day, whatsapp_delivery(day, [("wamid.1", "image", "m1")]))
    mc.run(capture(lake, graph, bot), TODAY)
    assert list(table(lake, TODAY - timedelta(days=1))) == ["m1"] and table(lake) == {}
    assert graph.hits["lookup:m1"] == 1


def test_schedule_is_off_without_tokens_and_on_with_them(lake, fakes, monkeypatch):
    graph, _ = fakes
    graph.add("m1", FakeFile(b"scheduled"))
    one_whatsapp(lake, "m1")
    assert runtime.run_media_capture() == [] and table(lake) == {}  # off: no token set
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", WA_TOKEN)
    monkeypatch.setenv("GRAPH_API_URL", graph.url)
    results = runtime.run_media_capture()
    assert sum(r.counts.get("stored", 0) for r in results) == 1
    monkeypatch.setenv("MEDIA_CAPTURE", "off")
    assert runtime.run_media_capture() == []
    put_raw(lake, "telegram", TODAY, telegram_update(TODAY, 1, "voice", "f1"))
    monkeypatch.setenv("MEDIA_CAPTURE", "on")
    runtime.run_media_capture()
    row = table(lake)["f1"]
    assert row.status == "disabled" and "TELEGRAM_BOT_TOKEN is not set" in row.error


def test_media_fetch_command_and_status(lake, fakes, monkeypatch, capsys):
    from chatlake import cli

    graph, _ = fakes
    graph.add("m1", FakeFile(b"by hand"))
    one_whatsapp(lake, "m1")
    one_whatsapp(lake, "m2")
    assert cli.main(["media", "fetch"]) == 1 and "no media token" in capsys.readouterr().err
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", WA_TOKEN)
    monkeypatch.setenv("GRAPH_API_URL", graph.url)
    monkeypatch.setenv("MEDIA_CAPTURE", "off")  # the schedule's switch: fetching by hand still works
    assert cli.main(["media", "fetch", "--date", str(TODAY), "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert '"stored": 1' in out and '"failed": 1' in out and WA_TOKEN not in out
    cli.main(["status", "--days", "1", "--format", "json"])
    assert '"stored": 1' in capsys.readouterr().out
    cli.main(["status", "--days", "1"])
    assert "1/0/1" in capsys.readouterr().out


def test_settings(monkeypatch):
    from chalicelib import settings

    s = settings.load({"MEDIA_MAX_BYTES": "1000", "MEDIA_CAPTURE": "ON"})
    assert s.media_max_bytes == 1000 and s.media_capture() is True
    assert settings.load({}).media_max_bytes == 100 * 1024 * 1024
    assert settings.load({"TELEGRAM_BOT_TOKEN_PARAM": "/x"}).media_capture() is True
    for bad in ({"MEDIA_MAX_BYTES": "0"}, {"MEDIA_MAX_BYTES": "1e9"}):
        with pytest.raises(settings.ConfigError, match="MEDIA_MAX_BYTES"):
            settings.load(bad).media_max_bytes  # noqa: B018
    with pytest.raises(settings.ConfigError, match="MEDIA_CAPTURE"):
        settings.load({"MEDIA_CAPTURE": "maybe"}).media_capture()


def test_the_fetch_path_imports_no_pyarrow_or_duckdb():
    code = ("import sys, app, chalicelib.media, chalicelib.media_capture; "
            "bad = [m for m in ('pyarrow', 'duckdb', 'sqlglot', 'pandas') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_extensions_come_from_the_mime_type():
    assert media.extension("audio/ogg; codecs=opus") == ".ogg"
    assert media.extension("image/jpeg") == ".jpg" and media.extension("application/pdf") == ".pdf"
    assert media.extension(None) == ".bin" and media.extension("../../etc") == ".bin"
    assert media.extension("application/x-unknown-thing") == ".bin"


