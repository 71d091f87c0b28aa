"""The RayJob's side of tunepipe: joining with KubeRay's injected token, run-or-resume."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from tunepipe.engine import auth
from tunepipe.engine.session import use_token_auth
from tunepipe.k8s import entry


def test_a_token_in_ray_auth_token_seeds_a_missing_0600_token_file(tmp_path, monkeypatch):
    token_file = tmp_path / "home" / ".tunepipe" / "ray_auth_token"
    monkeypatch.delenv("TUNEPIPE_RAY_TOKEN_PATH", raising=False)  # as in the image: unset
    monkeypatch.setenv("RAY_AUTH_TOKEN", "cluster-secret-token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert use_token_auth() == token_file
    assert token_file.read_text() == "cluster-secret-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "RAY_AUTH_TOKEN" not in os.environ  # the file is now the one source
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == str(token_file)


def test_a_token_file_holding_another_token_than_ray_auth_token_is_refused(tmp_path):
    token_file = auth.ensure_token(tmp_path / "t")  # a random token of its own
    with pytest.raises(auth.TokenFileError, match="another token than RAY_AUTH_TOKEN"):
        auth.ensure_token(token_file, token="the-cluster-token")
    assert auth.ensure_token(token_file, token=token_file.read_text()) == token_file


def _study(folder: Path) -> Path:
    path = folder / "study.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "data": {"source": "digits", "label": "label"},
                "model": {"kind": "mlp"},
            }
        )
    )
    return path


@pytest.mark.parametrize("begun", [False, True])
def test_the_entrypoint_resumes_exactly_when_the_run_folder_holds_the_study(
    tmp_path, monkeypatch, begun
):
    calls = []
    monkeypatch.setattr(entry, "run_study", lambda study, **kw: calls.append(("run", kw)))
    monkeypatch.setattr(entry, "resume_study", lambda d, **kw: calls.append(("resume", d, kw)))
    storage = tmp_path / "runs"
    if begun:
        (storage / "tiny").mkdir(parents=True)
        (storage / "tiny" / entry.STUDY_FILE).write_text("name: tiny\n")
    entry.run_or_resume(_study(tmp_path), str(storage), shared_storage=True)
    if begun:
        assert calls == [
            ("resume", f"{storage}/tiny", {"study_dir": tmp_path, "shared_storage": True})
        ]
    else:
        assert calls == [
            ("run", {"study_dir": tmp_path, "storage": str(storage), "shared_storage": True})
        ]
