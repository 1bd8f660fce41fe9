"""The node image's reuse check must not take an image built FROM it for the node image itself."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from reprise.testbed import image


class _Image:
    def __init__(self, image_id: str, created: str, labels: dict[str, str]) -> None:
        self.id = image_id
        self.attrs = {"Created": created}
        self.labels = labels
        self.tagged: list[tuple[str, str]] = []

    def tag(self, repository: str, version: str) -> None:
        self.tagged.append((repository, version))


class _Images:
    def __init__(self, found: list[_Image]) -> None:
        self.found = found

    def list(self, filters: dict[str, str]) -> list[_Image]:
        key, value = filters["label"].split("=", 1)
        return [i for i in self.found if i.labels.get(key) == value]


class _Client:
    def __init__(self, found: list[_Image]) -> None:
        self.images = _Images(found)


def test_reuse_takes_the_node_image_not_an_older_build_derived_from_it(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    inputs = image._fingerprint(tmp_path, "sha256:base")
    node = _Image("sha256:node", "2026-12-01T10:00:00Z", {"reprise.inputs": inputs})
    # FedScale's executor image, built FROM the node image by an older Reprise: same label
    derived = _Image("sha256:fedscale", "2026-12-01T10:05:00Z", {"reprise.inputs": inputs})
    client = _Client([derived, node])
    image_id, built = image.build_image(
        client, tmp_path, "reprise-node:latest", "base", "sha256:base", io.StringIO()
    )
    assert (image_id, built) == ("sha256:node", False)
    assert node.tagged == [("reprise-node", "latest")] and derived.tagged == []


def test_images_built_from_the_node_image_do_not_carry_its_identity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake_build(client: Any, context: Path, tag: str, args: Any, labels: Any, *rest: Any,
                   **kw: Any) -> None:  # fmt: skip
        seen.update(labels)

    monkeypatch.setattr(image, "_stream_build", fake_build)
    image.stream_build(None, tmp_path, "x:1", {}, {"reprise.role": "executor"}, io.StringIO())
    assert seen == {
        "reprise.inputs": "",
        "reprise.base": "",
        "reprise.base-id": "",
        "reprise.role": "executor",
    }
