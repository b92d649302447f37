"""Every service's OpenAPI matches its snapshot in contracts/openapi/ (refresh with `make openapi`)."""

import pytest

from tests.openapi_snapshots import APPS, render, snapshot_path


@pytest.mark.parametrize("name", sorted(APPS))
def test_openapi_matches_its_snapshot(name):
    path = snapshot_path(name)
    assert path.is_file(), f"no snapshot for {name}; run `make openapi`"
    assert render(name) == path.read_text(encoding="utf-8"), (
        f"the {name} API changed but contracts/openapi/{name}.json did not; review the change and run `make openapi`"
    )
