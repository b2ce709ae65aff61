"""The studies' experiments that need the models themselves: weight interpolation, weight-space
distances along checkpoints, adding new models to a map by scoring them on its selected texts.

May import: torch (lazily), `pylogmap.scoring`, `pylogmap.analysis`, `pylogmap.mapping`, `pylogmap.store`.
"""
