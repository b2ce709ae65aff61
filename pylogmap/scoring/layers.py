"""Which hidden states the logit lens scores: `None` (the model's own output), "all", or indices.

Hidden state 0 is the embeddings and `n_layers` the last layer; negative indices count from the
end. A job is asked for layers before its model is loaded (`job_layers`: "all" stays "all", since
the depth is not known yet); the scorer resolves them against the loaded model (`resolve_layers`).
"""

from __future__ import annotations

from typing import Sequence

from pylogmap.errors import PylogmapError

LayersArg = None | str | Sequence[int]


def resolve_layers(layers: LayersArg, n_layers: int) -> list[int] | None:
    """None (the model's own output) or the list of hidden-state indices 0..n_layers to score."""
    if layers is None:
        return None
    if isinstance(layers, str):
        if layers.strip().lower() == "all":
            return list(range(n_layers + 1))
        layers = parse_int_list(layers)
    out = []
    for layer in layers:
        layer = int(layer)
        if layer < 0:
            layer += n_layers + 1
        if not 0 <= layer <= n_layers:
            raise PylogmapError(
                f"layer {layer} does not exist: this model has hidden states 0 (embeddings) to "
                f"{n_layers} (the last layer); pass layers in that range or 'all'."
            )
        if layer not in out:
            out.append(layer)
    return out


def job_layers(layers: LayersArg) -> None | str | tuple[int, ...]:
    """The layers of a scoring job, before any model is loaded: None, "all" or a tuple of indices.

    Indices must be non-negative here: a row's layer is part of its key in the map file, where -1
    stands for the model's own output, and a negative index would mean a different layer for
    models of different depths.
    """
    if isinstance(layers, str):
        layers = "all" if layers.strip().lower() == "all" else tuple(parse_int_list(layers))
    elif layers is not None:
        layers = tuple(dict.fromkeys(int(x) for x in layers))
    if isinstance(layers, tuple) and (not layers or min(layers) < 0):
        raise PylogmapError(
            f"lens layers must be non-negative hidden-state indices (0 = embeddings), got {list(layers)}; "
            "use 'all' for every layer."
        )
    return layers


def parse_int_list(text: str) -> list[int]:
    """'0,4,8' or '0:12:4' (inclusive range) or a mix: '0,2:6:2' -> [0, 2, 4, 6]."""
    out: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            if ":" in part:
                bits = [int(b) for b in part.split(":")]
                start, stop, step = (bits + [1])[:3] if len(bits) == 2 else bits
                if step <= 0:
                    raise ValueError
                out.extend(range(start, stop + 1, step))
            else:
                out.append(int(part))
        except ValueError:
            raise PylogmapError(
                f"cannot read {part!r} as a layer list; use integers like '0,4,8', 'all', or an "
                "inclusive range 'START:STOP[:STEP]'."
            ) from None
    return out
