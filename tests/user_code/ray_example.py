"""A Ray Tune function trainable written as in Ray's own examples (no tunepipe import)."""

from ray import tune


def objective(config):
    for step in range(10):
        intermediate_score = (config["a"] - 0.3) ** 2 + config["b"] / (step + 1)
        tune.report({"score": intermediate_score})
