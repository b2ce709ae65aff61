"""Reading and writing the plain files a user hands us (JSON lines, CSV tables), one way each.

May import: the standard library, numpy, `pylogmap.errors`.
"""
