"""The local copy of a checkpoint a trial restores from (resume, LR decay, PBT exploit) is
removed when the trial ends, however it ends: one copy per restore used to stay in /tmp."""

from __future__ import annotations

import pytest

from tunepipe.train import trainable


@pytest.mark.parametrize("ends", ["returns", "raises"])
def test_the_restored_copy_is_removed_after_the_trial(tmp_path, monkeypatch, ends):
    copy = tmp_path / "checkpoint_tmp_abc"
    copy.mkdir()
    (copy / "model.pt").write_bytes(b"weights")
    seen = {}

    def fake_run_trial(config, data, study, report, restore_from=None, keep_best=None):
        seen["restore_from"] = restore_from
        seen["existed"] = (copy / "model.pt").exists()  # still there while the trial runs
        if ends == "raises":
            raise RuntimeError("the trial failed")
        return "completed"

    monkeypatch.setattr(trainable, "restore_point", lambda given: str(copy))
    monkeypatch.setattr("tunepipe.train.loop.run_trial", fake_run_trial)  # imported at call
    monkeypatch.setattr("ray.tune.get_checkpoint", lambda: None)

    class Study:
        class resources:
            cpu = 1

    if ends == "raises":
        with pytest.raises(RuntimeError):
            trainable.tune_trainable({}, None, Study())
    else:
        trainable.tune_trainable({}, None, Study())
    assert seen == {"restore_from": str(copy), "existed": True}
    assert not copy.exists()
