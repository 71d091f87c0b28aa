"""Arrow datasets: open, check, split, normalise (D1), shuffle (D2), batch."""

from tunepipe.data.batches import iterate_batches
from tunepipe.data.prepare import PreparedData, Split, load_data, prepare_arrays

__all__ = ["PreparedData", "Split", "iterate_batches", "load_data", "prepare_arrays"]
