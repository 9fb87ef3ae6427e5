"""`dig_preflight.s3` public API against the moto server: URLs, listings, request counter, typed errors."""

from __future__ import annotations

import pytest
from dig_preflight.s3 import NoSuchBucket, NotFound, S3Store, StorageError, parse_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://b/p/q", ("b", "p/q")),
        ("s3://b", ("b", "")),
        ("s3://b/", ("b", "")),
        ("s3://b//x/", ("b", "x/")),
    ],
)
def test_preflight_parse_url(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["gs://b/x", "s3:///x", "b/x", ""])
def test_preflight_parse_url_rejects(url):
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        parse_url(url)


@pytest.fixture
def store_bucket(s3_env, bulk_put):
    name = "s3-api-test"
    bulk_put(name, {f"big/{i:05d}.bin": b"x" for i in range(2500)})
    bulk_put(
        name,
        {"dir/": b"", "dir/a-zero.bin": b"", "dir/sub/a.txt": b"abc", "dir/sub2/b.txt": b"b", "dirx/c": b"c"},
    )
    return name


def test_preflight_store_listing_is_paged_and_bounded(store_bucket):
    store = S3Store()
    assert len(store.list_keys(store_bucket, "big/", max_keys=1500)) == 1500
    assert store.requests == 2  # 1000 + 500: MaxKeys shrinks the last page
    store.requests = 0
    assert len(store.list_keys(store_bucket, "big/")) == 2500 and store.requests == 3
    store.requests = 0
    assert store.exists_prefix(store_bucket, "big") and store.requests == 1


def test_preflight_store_directory_semantics(store_bucket):
    store = S3Store()
    assert store.first_key(store_bucket, "dir") == "dir/a-zero.bin"  # the "dir/" marker is skipped
    assert store.first_key(store_bucket, "dir", nonempty=True) == "dir/sub/a.txt"
    assert store.list_children(store_bucket, "dir") == (["sub", "sub2"], ["a-zero.bin"])
    assert not store.exists_prefix(store_bucket, "di")  # "di" is not a directory of anything
    assert store.head(store_bucket, "dir/sub/a.txt")["ContentLength"] == 3


def test_preflight_store_download_is_atomic(store_bucket, tmp_path):
    store = S3Store()
    dest = tmp_path / "out" / "a.txt"
    store.download(store_bucket, "dir/sub/a.txt", dest)
    assert dest.read_bytes() == b"abc"
    with pytest.raises(NotFound) as info:
        store.download(store_bucket, "dir/missing.txt", tmp_path / "out" / "m.txt")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt"]  # no partial file left
    assert info.value.bucket == store_bucket and info.value.key == "dir/missing.txt"


def test_preflight_store_errors_name_bucket_key_and_fix(s3_env):
    store = S3Store()
    with pytest.raises(NoSuchBucket) as info:
        store.list_keys("no-such-bucket-here", "x/")
    err = info.value
    assert isinstance(err, StorageError) and err.bucket == "no-such-bucket-here"
    assert "no-such-bucket-here" in str(err) and err.hint and err.hint in str(err)
    assert not store.bucket_exists("no-such-bucket-here")
