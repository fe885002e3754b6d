"""HAProxy's configuration: what the README shows is the template the fleet fills in, and
HAProxy accepts what it writes."""

from __future__ import annotations

import re
from pathlib import Path

from app.core.settings import REPO_ROOT
from app.fleet import haproxy
from app.fleet.haproxy import TEMPLATE, Checks


def test_the_readme_shows_the_template() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    shown = re.search(r"```haproxy\n(.*?)```", readme, re.DOTALL)
    assert shown is not None, "README has no ```haproxy block"
    assert shown.group(1) == TEMPLATE.read_text()


async def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    text = haproxy.render(
        bind="127.0.0.1",
        port=18000,
        node_ports=[18001, 18002, 18003],
        stats_socket=tmp_path / "haproxy.sock",
        checks=Checks(interval_ms=300, fall=3, rise=2),
    )
    config.write_text(text)
    await haproxy.check_config(config)
    assert "bind 127.0.0.1:18000" in text
    for index in (1, 2, 3):
        assert f"server node{index} 127.0.0.1:1800{index}" in text
    assert "default-server check inter 300 fall 3 rise 2" in text
