"""pyproject lists every package explicitly (dashboards/ installs as cnnkeras.dashboards)."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_every_cnnkeras_package_is_listed_in_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.relative_to(REPO).parent.parts) for p in (REPO / "cnnkeras").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert config["package-dir"]["cnnkeras.dashboards"] == "dashboards"
    import cnnkeras.dashboards

    assert (cnnkeras.dashboards.TEMPLATES / "report.html.j2").is_file()
