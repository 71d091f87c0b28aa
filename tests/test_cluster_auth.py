"""The token file: created private, refused when others can read it, sent the way Ray expects."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tunepipe.engine import auth
from tunepipe.engine.auth import TokenFileError, auth_env, auth_headers, ensure_token
from tunepipe.engine.local_cluster import ClusterError, LocalCluster


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_token_file_is_private_and_random(tmp_path):
    first = ensure_token(tmp_path / "tp" / "token")
    second = ensure_token(tmp_path / "other" / "token")
    assert _mode(first) == 0o600
    assert _mode(first.parent) == 0o700
    assert len(first.read_text()) == 64  # 256 bits in hex, as Ray's own generator
    assert first.read_text() != second.read_text()


def test_existing_token_is_kept(tmp_path):
    path = ensure_token(tmp_path / "token")
    token = path.read_text()
    assert ensure_token(path) == path
    assert path.read_text() == token


def test_default_path_is_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ensure_token() == tmp_path / ".tunepipe" / "ray_auth_token"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_token_readable_by_others_is_refused_with_the_fix(tmp_path, mode):
    path = ensure_token(tmp_path / "token")
    path.chmod(mode)
    with pytest.raises(TokenFileError) as refused:
        ensure_token(path)
    assert f"chmod 600 {path}" in str(refused.value)
    assert path.read_text() not in str(refused.value)
    with pytest.raises(TokenFileError):
        auth_headers(path)


def test_empty_token_is_refused(tmp_path):
    path = tmp_path / "token"
    path.touch(mode=0o600)
    with pytest.raises(TokenFileError, match="empty"):
        ensure_token(path)


def test_env_names_the_file_not_the_token(tmp_path):
    path = ensure_token(tmp_path / "token")
    env = auth_env(path)
    assert env == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}
    assert path.read_text() not in "".join(env.values())


def test_headers_carry_the_bearer_token(tmp_path):
    path = ensure_token(tmp_path / "token")
    assert auth_headers(path) == {"authorization": f"Bearer {path.read_text()}"}


def test_header_names_match_rays(tmp_path):
    # Copied from a private Ray module; fail loudly if a Ray upgrade renames them.
    from ray._private.authentication import authentication_constants as ray_auth
    from ray._private.authentication.authentication_token_setup import AUTH_MODE_ENV_VAR

    assert auth.AUTHORIZATION_HEADER_NAME == ray_auth.AUTHORIZATION_HEADER_NAME
    assert auth.AUTHORIZATION_BEARER_PREFIX == ray_auth.AUTHORIZATION_BEARER_PREFIX
    assert auth.AUTH_MODE_ENV_VAR == AUTH_MODE_ENV_VAR


def test_rays_token_loader_reads_our_file(tmp_path, monkeypatch):
    """Ray's own loader, pointed at our file, yields the same header we send."""
    from ray._raylet import AuthenticationTokenLoader, Config

    path = ensure_token(tmp_path / "token")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    loader = AuthenticationTokenLoader.instance()
    try:
        auth.use_token_in_this_process(path)
        ray_header = loader.get_token_for_http_header()
        assert {k.lower(): v for k, v in ray_header.items()} == auth_headers(path)
    finally:
        monkeypatch.undo()
        Config.initialize("")
        loader.reset_cache()


def test_cluster_folder_too_long_for_ray_sockets_is_refused(tmp_path):
    with pytest.raises(ClusterError, match="at most 36 characters"):
        LocalCluster(tmp_path / ("x" * 40))


def test_attach_without_a_cluster_says_how_to_start_one(tmp_path):
    with pytest.raises(ClusterError, match="local_cluster.py start --dir"):
        LocalCluster.attach(tmp_path)


def test_token_is_not_world_readable_even_with_a_lax_umask(tmp_path):
    old = os.umask(0)
    try:
        path = ensure_token(tmp_path / "lax" / "token")
    finally:
        os.umask(old)
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
