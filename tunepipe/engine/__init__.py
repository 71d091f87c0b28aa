"""Everything that builds Ray objects: the Ray session, the Tuner, callbacks, results."""
