"""A bad or missing setting stops start-up with one clear line naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def start_app(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DISCUX_INSTANCE_PATH": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", "import app"], capture_output=True, text=True, cwd=ROOT,
        env={**base, **env}, timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "k" * 32}, "DISCUX_BASE_URL"),  # required outside demo mode
        ({"SECRET_KEY": "k" * 32, "DATABASE_URL": "postgres://x/y"}, "DATABASE_URL"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_LLM_TIMEOUT": "soon"}, "DISCUX_LLM_TIMEOUT"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_LLM_TIMEOUT": "-3"}, "DISCUX_LLM_TIMEOUT"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_GITHUB_CLIENT_ID": "abc"}, "DISCUX_GITHUB_CLIENT_SECRET"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_OIDC_CLIENT_ID": "a", "DISCUX_OIDC_CLIENT_SECRET": "b"},
         "DISCUX_OIDC_ISSUER"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_DEV_LOGIN": "maybe"}, "DISCUX_DEV_LOGIN"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_BASE_URL": "discux.example.com"}, "DISCUX_BASE_URL"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_REDIS_URL": "cache.internal:6380"}, "DISCUX_REDIS_URL"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_LLM_PROVIDER": "gpt"}, "DISCUX_LLM_PROVIDER"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_AGENT_WORKERS": "0"}, "DISCUX_AGENT_WORKERS"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_MAX_SOCKETS": "lots"}, "DISCUX_MAX_SOCKETS"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_HTTP_THREADS": "lots"}, "DISCUX_HTTP_THREADS"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_DATABASE_POOL_SIZE": "0"}, "DISCUX_DATABASE_POOL_SIZE"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_TRUSTED_PROXIES": "yes"}, "DISCUX_TRUSTED_PROXIES"),
        ({"SECRET_KEY": "k" * 32, "DISCUX_TRUSTED_PROXIES": "11"}, "DISCUX_TRUSTED_PROXIES"),
        ({"DISCUX_DEV_LOGIN": "1", "DISCUX_DEFAULT_PLAN": "enterprise"}, "DISCUX_DEFAULT_PLAN"),
        ({"DISCUX_DEV_LOGIN": "1", "DISCUX_ADMIN_EMAILS": "root@example.com, bob"},
         "DISCUX_ADMIN_EMAILS"),
    ],
)
def test_bad_setting_stops_startup_with_one_line_naming_it(tmp_path, env, named):
    result = start_app(tmp_path, **env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("discux: configuration error:")
    assert named in lines[0]


def test_demo_mode_generates_and_keeps_a_secret_key(tmp_path):
    first = start_app(tmp_path, DISCUX_DEV_LOGIN="1")
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 32
    second = start_app(tmp_path, DISCUX_DEV_LOGIN="1")
    assert second.returncode == 0
    assert (tmp_path / "secret_key").read_text() == key


def test_good_settings_start(tmp_path):
    result = start_app(tmp_path, SECRET_KEY="k" * 32, DISCUX_LLM_TIMEOUT="12.5",
                       DISCUX_BASE_URL="https://discux.example.com")
    assert result.returncode == 0, result.stderr
