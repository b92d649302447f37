"""The images' Dockerfiles, read as Docker would (there is no Docker engine to build them here): every deployable
has one, and each installs only its own package from the lock, runs unprivileged and starts its own app."""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
PINNED_BASE = re.compile(r"^[\w.\-/:]+:\d+\.\d+\.\d+[\w.\-]*(@sha256:[0-9a-f]{64})?$")


def deployables() -> dict[str, Path]:
    """Every workspace member that is started as an app (has `app.py` with `create_app`), by its folder."""
    members = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["uv"]["workspace"]["members"]
    found = {}
    for member in members:
        project = tomllib.loads((ROOT / member / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
        module = project.replace("-", "_")
        if (ROOT / member / module / "app.py").is_file():
            found[project] = ROOT / member
    return found


def stages(parser: DockerfileParser) -> list[list[dict]]:
    """The instructions of each stage, FROM first."""
    out: list[list[dict]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def values(stage: list[dict], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def uv_version() -> str:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return re.search(r"^UV_VERSION := (\S+)$", makefile, re.M)[1]


def test_every_deployable_has_an_image() -> None:
    found = deployables()
    assert set(found) == {
        "crm-customer",
        "crm-billing-adapter",
        "crm-ticketing",
        "crm-churn",
        "crm-campaign",
        "crm-gateway",
    }
    missing = [str(folder.relative_to(ROOT)) for folder in found.values() if not (folder / "Dockerfile").is_file()]
    assert missing == []
    assert (ROOT / ".dockerignore").is_file()


@pytest.mark.parametrize("project", sorted(deployables()))
def test_the_image_is_built_from_the_lock_and_runs_unprivileged(project: str) -> None:
    folder = deployables()[project]
    parser = DockerfileParser(path=str(folder / "Dockerfile"))
    steps = stages(parser)
    assert parser.is_multistage and len(steps) >= 2

    for image in parser.parent_images:
        assert "latest" not in image and PINNED_BASE.match(image), f"{image} is not pinned to an exact version"
    builder, runtime = steps[0], steps[-1]

    copies = " ".join(values(builder, "COPY"))
    assert f"ghcr.io/astral-sh/uv:{uv_version()} " in copies, "uv at the Makefile's pinned version"
    syncs = [run for run in values(builder, "RUN") if "uv sync" in run]
    assert syncs, "the builder installs with uv sync"
    for run in syncs:
        assert "--mount=type=cache" in run
        assert "--frozen" in run and "--no-dev" in run and "--compile-bytecode" in run
        assert re.findall(r"--package (\S+)", run) == [project], "exactly its own package"

    runtime_from = values(runtime, "FROM")[0]
    assert "uv" not in runtime_from
    assert all("--from=" in c or c.startswith("contracts ") for c in values(runtime, "COPY")), "only the venv and code"
    users = values(runtime, "USER")
    assert users, "the final stage names its user"
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), f"USER {users[-1]} is not a numeric non-root id"
    env = " ".join(values(runtime, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env

    module = project.replace("-", "_")
    command = json.loads(values(runtime, "CMD")[-1])
    assert command[:3] == ["uvicorn", f"{module}.app:create_app", "--factory"]
    assert "--proxy-headers" in command
    port = command[command.index("--port") + 1]
    assert values(runtime, "EXPOSE") == [port]

    spec = importlib.util.find_spec(f"{module}.app")
    assert spec is not None and spec.origin is not None
    assert re.search(r"^def create_app\(", Path(spec.origin).read_text(encoding="utf-8"), re.M), spec.origin
