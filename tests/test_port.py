"""Picking another port than 5000 (`make run PORT=8080`): the server and every link it sends
agree on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from booking_service.config import ConfigError, load_settings
from scripts.run_demo import demo_environment

ROOT = Path(__file__).resolve().parent.parent


def test_public_base_url_follows_port_unless_given(tmp_path):
    assert load_settings({"INSTANCE_DIR": str(tmp_path)}).PUBLIC_BASE_URL == "http://127.0.0.1:5000"
    moved = load_settings({"INSTANCE_DIR": str(tmp_path), "PORT": "8080"})
    assert (moved.PORT, moved.PUBLIC_BASE_URL) == (8080, "http://127.0.0.1:8080")
    given = load_settings({"INSTANCE_DIR": str(tmp_path), "PORT": "8080", "PUBLIC_BASE_URL": "https://clinic.example"})
    assert given.PUBLIC_BASE_URL == "https://clinic.example"


@pytest.mark.parametrize("value", ["eighty", "0", "65536"])
def test_a_bad_port_is_an_error_naming_port(tmp_path, value):
    with pytest.raises(ConfigError, match="PORT"):
        load_settings({"INSTANCE_DIR": str(tmp_path), "PORT": value})


def test_the_demo_serves_and_links_on_the_port_asked_for():
    env = demo_environment(8080, {"PATH": "/usr/bin"})
    assert (env["PORT"], env["PUBLIC_BASE_URL"]) == ("8080", "http://127.0.0.1:8080")
    assert env["PATH"] == "/usr/bin"
    # A public address (a tunnel, a proxy) is the user's choice and kept.
    tunnel = demo_environment(8080, {"PUBLIC_BASE_URL": "https://abc.ngrok.example"})
    assert tunnel["PUBLIC_BASE_URL"] == "https://abc.ngrok.example"


def test_the_demo_refuses_a_local_public_base_url_on_another_port():
    with pytest.raises(SystemExit, match=r"http://127\.0\.0\.1:5000 but the demo listens on port 8080"):
        demo_environment(8080, {"PUBLIC_BASE_URL": "http://127.0.0.1:5000"})
    assert demo_environment(8080, {"PUBLIC_BASE_URL": "http://localhost:8080"})["PORT"] == "8080"


def test_make_run_takes_port_and_the_readme_says_how():
    makefile = (ROOT / "Makefile").read_text()
    assert "PORT   ?= 5000" in makefile and "--port $(PORT)" in makefile
    readme = (ROOT / "README.md").read_text()
    assert "make run PORT=8080" in readme
