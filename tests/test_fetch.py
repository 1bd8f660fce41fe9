"""The data stage: verified cache, mirrors (config and $REPRISE_MIRRORS), HTTPS-style download."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from reprise.data.fetch import MIRRORS_ENV, UpstreamFile, fetch, load_catalog, mirror_dirs
from reprise.errors import ConfigError, DataError

CONTENT = b"job_id,submit_time\n0,1\n"
DIGEST = hashlib.sha256(CONTENT).hexdigest()


def entry(url: str = "http://127.0.0.1:9/none") -> UpstreamFile:
    return UpstreamFile("art/traces/t.csv", url, DIGEST, len(CONTENT))


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_mirror_copy_is_verified_and_installed(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "art/traces").mkdir(parents=True)
    (mirror / "art/traces/t.csv").write_bytes(CONTENT)
    dest = tmp_path / "res/t.csv"
    assert fetch(entry(), dest, [mirror], allow_download=False) == str(mirror / "art/traces/t.csv")
    assert dest.read_bytes() == CONTENT
    assert fetch(entry(), dest, [], allow_download=False) == "cached"


def test_corrupted_mirror_names_file_and_hashes_and_leaves_nothing(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "art/traces").mkdir(parents=True)
    (mirror / "art/traces/t.csv").write_bytes(CONTENT + b"1,2\n")
    dest = tmp_path / "res/t.csv"
    with pytest.raises(DataError) as err:
        fetch(entry(), dest, [mirror], allow_download=False)
    message = str(err.value)
    assert "art/traces/t.csv" in message and DIGEST in message
    assert hashlib.sha256(CONTENT + b"1,2\n").hexdigest() in message
    assert list((tmp_path / "res").iterdir()) == []


def test_download_over_http(tmp_path: Path, server: str) -> None:
    (tmp_path / "www/t.csv").write_bytes(CONTENT)
    dest = tmp_path / "res/t.csv"
    assert fetch(entry(f"{server}/t.csv"), dest, []) == f"{server}/t.csv"
    assert dest.read_bytes() == CONTENT


def test_download_with_wrong_content_leaves_no_file(tmp_path: Path, server: str) -> None:
    (tmp_path / "www/t.csv").write_bytes(b"tampered")
    dest = tmp_path / "res/t.csv"
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(entry(f"{server}/t.csv"), dest, [])
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_unreachable_url_says_how_to_work_offline(tmp_path: Path, server: str) -> None:
    with pytest.raises(DataError, match=MIRRORS_ENV):
        fetch(entry(f"{server}/missing.csv"), tmp_path / "t.csv", [])


def test_env_mirrors_come_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(MIRRORS_ENV, f"/env/a:{tmp_path}")
    assert mirror_dirs(["rel"], base=Path("/base")) == [Path("/env/a"), tmp_path, Path("/base/rel")]


def test_catalog_rejects_bad_digest(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("files:\n  a.csv:\n    url: http://x\n    sha256: nothex\n")
    with pytest.raises(ConfigError, match=r"files.a.csv.sha256"):
        load_catalog(path)


def test_project_catalog_matches_the_mirror(mirror: Path) -> None:
    catalog = load_catalog(Path(__file__).parents[1] / "config/upstream.yaml")
    assert len(catalog) > 100
    for item in catalog.values():
        assert item.url.startswith("https://raw.githubusercontent.com/")
        assert ("b3f5ea4c" in item.url) or ("277ed24d" in item.url)
    sample = catalog["ElasticFlow-artifact/ElasticFlow/traces_for_ElasticFlow/elasticVpollux_e.csv"]
    actual = hashlib.sha256((mirror / sample.path).read_bytes()).hexdigest()
    assert actual == sample.sha256
