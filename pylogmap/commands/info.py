"""Summarise a map file: its text set, the scored models with their status, what /map holds.

Shows the first models (all of them with --all), failed models with their errors, annotation
columns, derived results under /map, and results still waiting in the journal (a scorer is running
or was killed; they are committed when the scorer resumes or the file is next opened).
"""

from __future__ import annotations

import argparse

import numpy as np

from pylogmap.commands.texts import format_text_set
from pylogmap.errors import PylogmapError
from pylogmap.numbers import format_value
from pylogmap.store import open_map


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the map file (.h5)")
    parser.add_argument("--all", action="store_true", help="list every model (default: the first 30)")
    parser.add_argument("--limit", type=int, default=30, help="models listed without --all (default 30)")


def run(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise PylogmapError(f"--limit must be 0 or more; got {args.limit}.")
    with open_map(args.file) as mf:
        print(f"map file {mf.path}  (format version {mf.format_version}, commit {mf.commit_seq})")
        print(format_text_set(mf.texts(), ""))
        table = mf.models_table()
        status = table["status"]
        m = mf.n_models
        n_ok = int((status == "ok").sum())
        print(f"models  {m} rows: {n_ok} ok, {m - n_ok} failed")
        rows = range(m) if args.all else range(min(m, args.limit))
        labels = table["label"]
        if len(rows):
            L = mf.loglik(list(rows))
            width = min(60, max(len(labels[i]) for i in rows))
            print(f"  {'label':<{width}}  {'status':<6}  {'dtype':<8}  {'params':>9}  {'mean loglik':>11}")
            for j, i in enumerate(rows):
                finite = np.isfinite(L[j])
                mean = f"{format_value(L[j][finite].mean(), 6):>11}" if finite.any() else f"{'-':>11}"
                params = _params(int(table["n_params"][i]))
                print(f"  {labels[i]:<{width}}  {status[i]:<6}  {table['dtype'][i]:<8}  {params:>9}  {mean}")
        if len(rows) < m:
            print(f"  ... {m - len(rows)} more (use --all)")
        failed = np.flatnonzero(status != "ok")
        if len(failed):
            print("failed")
            for i in failed[:20]:
                print(f"  {labels[i]}: {table['error'][i]}")
            if len(failed) > 20:
                print(f"  ... {len(failed) - 20} more")
        ann = mf.annotations()
        if ann:
            print("annotations  " + ", ".join(f"{k} ({'text' if v.dtype == object else 'number'})" for k, v in ann.items()))
        derived = mf.derived_names()
        attrs = mf.map_attrs()
        if derived or attrs:
            print("map")
            for k, v in attrs.items():
                print(f"  @{k} = {format_value(v, 6, trim=True) if isinstance(v, float) else v}")
            for name in derived:
                arr, _ = mf.read_derived(name)
                print(f"  {name}  {arr.dtype} {list(arr.shape)}")
        else:
            print("map     nothing computed yet (run 'pylogmap map')")
        for line in mf.journal_report():
            print(f"journal {line}")
    return 0


def _params(n: int) -> str:
    if n < 0:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{format_value(n / scale, 3, trim=True)}{unit}"
    return str(n)
