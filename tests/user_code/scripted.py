"""An own trainable whose losses follow a script per trial, so each playbook rule fires once.

Checkpoints every epoch and resumes from one, as a plateau decay (pause, new lr) requires.
"""

import json
import os
import tempfile

from ray import tune

FALL = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]  # 0.5 at epoch 4: ASHA's rung ties, no prune
SCRIPTS = {
    "complete": (FALL, FALL),
    "diverge": ([1.0, 50.0] + [50.0] * 6, FALL),  # > 10 x its first loss at epoch 2
    "overfit": ([1.0, 0.8, 0.6, 0.5, 0.4, 0.45, 0.5, 0.55], FALL),  # no new best from 5 on
    "plateau": ([0.5] * 8, [0.5] * 8),  # flat: a decay at 3, a stop at 5
    "error": ([1.0] * 8, FALL),  # raises at epoch 2
    "prune": ([5.0] * 8, [5.0] * 8),  # far worse than the others at the rung (epoch 4)
}


def trial(config):
    val, train = SCRIPTS[config["script"]]
    start = 0
    given = tune.get_checkpoint()
    if given is not None:
        with given.as_directory() as folder:
            with open(os.path.join(folder, "epoch.json")) as f:
                start = json.load(f)["epoch"]
    for epoch in range(start + 1, len(val) + 1):
        if config["script"] == "error" and epoch == 2:
            raise RuntimeError("scripted failure")
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "epoch.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            metrics = {
                "epoch": epoch,
                "val_loss": val[epoch - 1],
                "train_loss": train[epoch - 1],
                "lr": config["lr"],
            }
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
