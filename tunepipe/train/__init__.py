"""The trainable: a plain PyTorch loop (loop.py) and its Ray Tune wrapper (trainable.py)."""
