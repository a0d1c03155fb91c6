"""The storage interface, run against both backends (folder and S3 via moto)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chalicelib.settings import ConfigError
from chalicelib.storage import FolderStorage, NotFound, S3Storage, StorageError, open_storage
from tests.conftest import keys


def test_put_get_roundtrip_exact_bytes(lake):
    body = b'{"text":"caf\\u00e9 \xe2\x98\x95"}\r\n\x00'
    assert lake.put("raw/source=telegram/dt=2026-11-24/a.json", body) is True
    assert lake.get("raw/source=telegram/dt=2026-11-24/a.json") == body


def test_put_without_overwrite_keeps_the_first_object(lake):
    assert lake.put("raw/x/a.json", b"first", overwrite=False) is True
    assert lake.put("raw/x/a.json", b"second", overwrite=False) is False
    assert lake.get("raw/x/a.json") == b"first"
    assert lake.put("raw/x/a.json", b"third") is True
    assert lake.get("raw/x/a.json") == b"third"


def test_list_is_recursive_sorted_and_prefix_exact(lake):
    for key in ["raw/b/2.json", "raw/a/1.json", "raw/a/0.json", "raw/ab/3.json", "enriched/m/x.parquet"]:
        lake.put(key, key.encode())
    assert keys(lake, "raw/") == ["raw/a/0.json", "raw/a/1.json", "raw/ab/3.json", "raw/b/2.json"]
    assert keys(lake, "raw/a/") == ["raw/a/0.json", "raw/a/1.json"]
    assert keys(lake, "raw/a") == ["raw/a/0.json", "raw/a/1.json", "raw/ab/3.json"]
    assert keys(lake, "nothing/here/") == []
    info = next(iter(lake.list("raw/b/")))
    assert info.size == len(b"raw/b/2.json")
    assert abs(info.modified - datetime.now(UTC)) < timedelta(minutes=5)


def test_delete_and_not_found(lake):
    lake.put("enriched/messages/dt=2026-11-24/part.parquet", b"x")
    lake.delete("enriched/messages/dt=2026-11-24/part.parquet")
    lake.delete("enriched/messages/dt=2026-11-24/part.parquet")  # deleting twice is fine
    assert keys(lake, "enriched/") == []
    with pytest.raises(NotFound):
        lake.get("enriched/messages/dt=2026-11-24/part.parquet")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/"])
def test_bad_keys_are_refused(lake, key):
    with pytest.raises(ValueError):
        lake.put(key, b"x")


def test_folder_writes_leave_no_temp_files(tmp_path: Path):
    store = FolderStorage(tmp_path)
    for i in range(20):
        store.put("raw/d/a.json", str(i).encode())
        store.put("raw/d/b.json", b"x", overwrite=False)
    assert sorted(p.name for p in (tmp_path / "raw" / "d").iterdir()) == ["a.json", "b.json"]


def test_folder_failure_is_a_storage_error(tmp_path: Path):
    (tmp_path / "file").write_text("not a folder")
    store = FolderStorage(tmp_path / "file")
    with pytest.raises(StorageError, match="cannot write"):
        store.put("raw/a.json", b"x")


def test_s3_missing_bucket_is_a_storage_error(s3):
    store = S3Storage("no-such-bucket", client=s3)
    with pytest.raises(StorageError, match="NoSuchBucket"):
        store.put("raw/a.json", b"x")
    with pytest.raises(StorageError):
        list(store.list("raw/"))


def test_open_storage_urls(tmp_path: Path):
    assert isinstance(open_storage(str(tmp_path)), FolderStorage)
    folder = open_storage(f"file://{tmp_path}/lake")
    assert isinstance(folder, FolderStorage) and folder.root == tmp_path / "lake"
    s3 = open_storage("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Storage) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix/")
    assert open_storage("s3://bucket").prefix == ""
    assert isinstance(open_storage("a:b"), FolderStorage)  # a folder name with a colon is still a folder


@pytest.mark.parametrize(("url", "says"), [
    ("s3://", "has no bucket: use s3://bucket[/prefix]"),
    ("s3:///x", "has no bucket"),
    ("s3:/x", "is not a valid s3:// URL: use s3://bucket[/prefix], file:///abs/path or a folder path"),
    ("s3:bucket", "is not a valid s3:// URL"),
    ("S3://bucket", "is not a valid s3:// URL"),
    ("gs://bucket/x", "uses gs://, which is not supported: use s3://bucket[/prefix]"),
    ("file://host/x", "a file:// URL must be absolute (file:///path)"),
    ("~/lake", "~ is not expanded here: use an absolute path or $HOME/lake"),
    ("~bob/lake", "~ is not expanded here: use an absolute path"),
])
def test_a_malformed_lake_url_is_a_config_error_that_says_what_to_write(url, says):
    with pytest.raises(ConfigError) as e:
        open_storage(url)
    assert str(e.value).startswith(f"DATALAKE_URL {url!r}") and says in str(e.value)
