"""The offline demo: a zoo of tiny causal LMs trained here, scored, mapped, reported and shown.

May import everything below it (scoring, mapping, analysis, viewer); torch and transformers lazily.
"""

from pylogmap.demo.run import DemoResult, run_demo

__all__ = ["DemoResult", "run_demo"]
