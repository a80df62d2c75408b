"""A day: its slices put together, diffed against the stream side, its outputs built and published as a version."""
