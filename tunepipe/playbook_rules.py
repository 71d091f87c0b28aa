"""The playbook's rule ids (P1, L1, ...): one line each, in tunepipe's own words.

Code, docs and the report cite rules by id. This table is the one place their meaning is written
down inside the package, so a report opened far from the repository still explains every id it
cites; docs/playbook.md says the same at length (tests/test_docs.py keeps the two in step).
A table of data, not logic: pure Python, importable from anywhere.
"""

from __future__ import annotations

import re

RULES: dict[str, tuple[str, str]] = {
    # id: (title, what it asks and what tunepipe does about it)
    "P1": ("Start small, aim to overfit",
           "a model that cannot memorise a tiny subset has a bug; the sanity stage tries it first"),
    "P2": ("Design the loss",
           "softmax + cross-entropy, sigmoid + BCE, linear + MSE; regression targets are scaled"),
    "P3": ("Read the loss, not the accuracy",
           "accuracy moves in jumps, the loss smoothly: every stop and promotion reads a loss"),
    "P4": ("Has the classifier learned?",
           "its top softmax probability moves from near uniform towards 1; reported each epoch"),
    "P5": ("Is the learning rate sane?",
           "too high explodes or goes NaN, too low crawls: divergence stop, LR range test, decay"),
    "P6": ("Compare training and validation loss",
           "the gap shows overfitting and when to stop; the overfitting stop keeps the best epoch"),
    "P7": ("Know the receptive field",
           "how much of the image one CNN unit sees; `tunepipe inspect` prints it"),
    "P8": ("Tune on validation, not test",
           "the test split is held out and measured once, on the best model, at the end"),
    "D1": ("Standardise inputs",
           "subtract the mean and divide by the standard deviation of the training split only"),
    "D2": ("Shuffle", "every epoch sees the training rows in a new, seeded order"),
    "M1": ("Deep and narrow",
           "depth adds non-linearity cheaply but trains harder; wider layers overfit sooner"),
    "M2": ("Clip recurrent gradients", "RNNs clip the gradient norm, to about 5 or 15"),
    "M3": ("Max-norm", "a limit on some layers' weight norms helps generalisation"),
    "I1": ("Initialise to match the activation",
           "He normal for ReLU, Xavier for tanh; a good start converges faster"),
    "F1": ("Filters", "3x3 kernels, counts in powers of two, a first layer that is not too thin"),
    "A1": ("Activations",
           "ReLU in hidden layers first (tanh in RNNs); the output matches the loss (P2)"),
    "R1": ("Regularise last",
           "dropout, batch norm, augmentation once the net trains well, ideally once it overfits"),
    "RB1": ("Residual blocks and batch norm", "they let a net go deeper and train faster"),
    "L1": ("The learning rate first",
           "tune it before anything else; decay by 0.1-0.5 on a plateau; update/weight near 1e-3"),
    "B1": ("Batch size", "16 to 128, powers of two; multiples of 32 on a GPU"),
    "MO1": ("Momentum 0.9", "the default for SGD's momentum and Adam's beta1"),
    "E1": ("Enough epochs",
           "stop when validation error turns back up while training error still falls"),
    "O1": ("Adam at 3e-4", "the safe default optimiser; SGD can reach further but is slower"),
}  # fmt: skip

# An id is cited as a whole word: "P5", "(P6, E1)", "playbook L1".
CITATION = re.compile(r"\b(" + "|".join(sorted(RULES, key=len, reverse=True)) + r")\b")


def cited(text: str) -> list[str]:
    """The rule ids `text` cites, each once, in the table's order."""
    found = set(CITATION.findall(text))
    return [rule for rule in RULES if rule in found]
