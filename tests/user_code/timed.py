"""An own trainable that records when it ran (for the max_concurrent_trials test)."""

import time

from ray import tune


def train(config):
    started = time.time()
    for step in range(3):
        time.sleep(0.2)
        tune.report({"loss": config["x"] / (step + 1), "started": started, "now": time.time()})
