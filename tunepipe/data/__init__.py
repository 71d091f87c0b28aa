"""Arrow datasets: open, check, split, normalise (D1), shuffle (D2), batch."""

from typing import Any

from tunepipe.data.prepare import PreparedData, Split, load_data, prepare_arrays

__all__ = ["PreparedData", "Split", "iterate_batches", "load_data", "prepare_arrays"]


def __getattr__(name: str) -> Any:
    if name == "iterate_batches":  # imports torch: only where batches are made, not in validate
        from tunepipe.data.batches import iterate_batches

        return iterate_batches
    raise AttributeError(f"module 'tunepipe.data' has no attribute {name!r}")
