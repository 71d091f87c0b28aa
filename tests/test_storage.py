"""Run folders named by the user: relative paths, ".", "~", trailing slashes, URIs."""

from __future__ import annotations

from tunepipe.storage import locate_run_dir


def test_relative_and_dot_run_dirs_name_the_folder_itself(tmp_path, monkeypatch):
    (tmp_path / "runs" / "x").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "runs" / "x")
    assert locate_run_dir(".").path == str(tmp_path / "runs" / "x")
    monkeypatch.chdir(tmp_path)
    loc = locate_run_dir("runs/x/")
    assert (loc.path, loc.name) == (str(tmp_path / "runs" / "x"), "x")


def test_home_and_uri_run_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert locate_run_dir("~/runs/x").path == str(tmp_path / "runs" / "x")
    loc = locate_run_dir(f"file://{tmp_path}/runs/x/")
    assert (loc.path, loc.display) == (f"{tmp_path}/runs/x", f"file://{tmp_path}/runs/x")
