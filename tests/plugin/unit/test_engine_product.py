"""The docker backend's header names the engine's product from what its API says: Podman's
Docker-compatible API lists a "Podman Engine" component, Docker's an "Engine"."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_aegis.backends.docker.engine import Engine, EngineAddress


class Answers:
    """A docker-py client whose ``version()`` answers ``info`` (the reply's shape is the API's)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    def version(self) -> dict[str, Any]:
        return self.info


@pytest.mark.parametrize(
    ("components", "shown"),
    [
        ([{"Name": "Podman Engine"}, {"Name": "Conmon"}], "Podman 4.3.1"),
        ([{"Name": "Engine"}, {"Name": "containerd"}], "Docker 4.3.1"),
        ([], "Docker 4.3.1"),
    ],
)
def test_the_product_and_version(components: list[dict[str, str]], shown: str) -> None:
    engine = Engine(Answers({"Version": "4.3.1", "Components": components}))
    assert engine.version == shown


def test_the_endpoint_says_where_it_was_found() -> None:
    found = EngineAddress("unix:///run/podman/podman.sock", "DOCKER_HOST")
    assert Engine(Answers({}), found).endpoint == "unix:///run/podman/podman.sock from DOCKER_HOST"
