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
        nodes=[("127.0.0.1", 18001), ("127.0.0.1", 18002), ("127.0.0.1", 18003)],
        stats_socket=tmp_path / "haproxy.sock",
        checks=Checks(interval_ms=300, fall=3, rise=2),
    )
    config.write_text(text)
    await haproxy.check_config(config)
    assert "bind 127.0.0.1:18000" in text
    for index in (1, 2, 3):
        assert f"server node{index} 127.0.0.1:1800{index}" in text
    assert "default-server check inter 300 fall 3 rise 2" in text


async def test_nodes_on_hosts_of_their_own(tmp_path: Path) -> None:
    """Nodes placed elsewhere (the tests' namespaces): each `server` line names its address."""
    config = tmp_path / "haproxy.cfg"
    text = haproxy.render(
        bind="127.0.0.1",
        port=18000,
        nodes=[("10.213.7.2", 18001), ("10.213.7.3", 18002)],
        stats_socket=tmp_path / "haproxy.sock",
        checks=Checks(),
    )
    config.write_text(text)
    await haproxy.check_config(config)
    servers = [line.strip() for line in text.splitlines() if line.strip().startswith("server ")]
    assert servers == ["server node1 10.213.7.2:18001", "server node2 10.213.7.3:18002"]
