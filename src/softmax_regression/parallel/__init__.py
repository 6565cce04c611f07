"""Data-parallel training: the ranks' shards and all-reduces, and starting the ranks."""
