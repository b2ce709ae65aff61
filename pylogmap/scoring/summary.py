"""What a scoring run did, one line per row: scored, failed (with the error) or skipped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class RowSummary:
    """One row of a run: its label, status and, when scored, speed, mean log-likelihood and time."""

    label: str
    status: str  # "ok", "failed", "skipped" (finished in an earlier run)
    tokens_per_s: float = math.nan
    mean_loglik: float = math.nan
    wall_time_s: float = math.nan
    error: str = ""
    note: str = ""  # e.g. a skipped hub row whose branch has moved since it was scored


@dataclass
class ScoreSummary:
    """What `score_models` did: one line per row, plus the path of the map file."""

    path: str
    rows: list[RowSummary] = field(default_factory=list)

    @property
    def failed(self) -> list[RowSummary]:
        return [r for r in self.rows if r.status == "failed"]

    @property
    def scored(self) -> list[RowSummary]:
        return [r for r in self.rows if r.status == "ok"]

    def table(self, *, details: bool = True) -> str:
        """The table, then (with `details`) one line per failure and per note."""
        header = ("model", "status", "tokens/s", "mean loglik", "wall s")
        lines = [header]
        for r in self.rows:
            lines.append((
                r.label, r.status,
                "" if math.isnan(r.tokens_per_s) else f"{r.tokens_per_s:,.0f}",
                "" if math.isnan(r.mean_loglik) else f"{r.mean_loglik:.3f}",
                "" if math.isnan(r.wall_time_s) else f"{r.wall_time_s:.1f}",
            ))
        widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
        out = []
        for i, line in enumerate(lines):
            out.append("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w)
                                 for c, (cell, w) in enumerate(zip(line, widths))).rstrip())
            if i == 0:
                out.append("  ".join("-" * w for w in widths))
        if details:
            out.extend(f"failed: {r.label}: {r.error}" for r in self.failed)
            out.extend(f"note: {r.label}: {r.note}" for r in self.rows if r.note)
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()
