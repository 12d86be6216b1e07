"""Rows of a generation output as single rows, and moving rows between processes point to point.

Dynamic sampling keeps rows from several rounds and sends each to the process that trains its
position (`epx.train.dynamic`): a `RowTable` holds rows by slot (each a copy, so a round's large
tensors are freed once its kept rows are taken), `move_rows` routes rows with `isend`/`irecv`
(gloo on CPU, NCCL on GPU), and `RowTable.stack` pads them back into a batch: prompts on the left,
completions and their per-token tensors on the right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

LEFT_PADDED = ("prompt_ids", "prompt_mask")
BATCH_TOTALS = ("num_items_in_batch",)  # recomputed for the kept batch
Route = tuple[int, int, int, int]  # (source rank, source index, destination rank, slot)


def row_tensors(output: dict[str, Any], local: int) -> dict[str, Tensor]:
    """The per-row tensors of a round's output ((local,) or (local, T)); 0-dim and batch totals
    are left out. A non-tensor value or a tensor of another shape cannot be moved: an error."""
    rows = {}
    for key, value in output.items():
        if key in BATCH_TOTALS or (isinstance(value, Tensor) and value.dim() == 0):
            continue
        if not isinstance(value, Tensor) or value.size(0) != local or value.dim() > 2:
            raise ValueError(f"dynamic sampling cannot move the generation output {key!r}")
        rows[key] = value
    return rows


def _pad_stack(rows: Sequence[Tensor], left: bool, fill: float) -> Tensor:
    """Rows (T_i,) stacked into (n, max T_i), padded on the left or the right; (n,) for 0-dim."""
    if rows[0].dim() == 0:
        return torch.stack(list(rows))
    length = max(row.size(0) for row in rows)
    out = rows[0].new_full((len(rows), length), fill)
    for i, row in enumerate(rows):
        if left:
            out[i, length - row.size(0) :] = row
        else:
            out[i, : row.size(0)] = row
    return out


def _fill_value(key: str, pad_id: int) -> int:
    return pad_id if key.endswith("_ids") else 0


class RowTable:
    """Rows by slot: slot -> {key: the row's tensor, () or (T,)}."""

    def __init__(self, rows: dict[int, dict[str, Tensor]] | None = None) -> None:
        self.rows: dict[int, dict[str, Tensor]] = dict(rows or {})

    @classmethod
    def of_batch(cls, batch: dict[str, Tensor]) -> RowTable:
        """A batch's rows (views, not copies), slot = row index."""
        count = next(iter(batch.values())).size(0)
        return cls({i: {key: value[i] for key, value in batch.items()} for i in range(count)})

    def update(self, rows: dict[int, dict[str, Tensor]]) -> None:
        self.rows.update(rows)

    def stack(self, count: int, pad_id: int) -> dict[str, Tensor]:
        """Slots 0..count-1 as one batch (every slot must be there)."""
        missing = [slot for slot in range(count) if slot not in self.rows]
        assert not missing, f"rows {missing} of the kept batch never arrived"
        ordered = [self.rows[slot] for slot in range(count)]
        return {
            key: _pad_stack([row[key] for row in ordered], key in LEFT_PADDED, _fill_value(key, pad_id))
            for key in ordered[0]
        }


def move_rows(
    source: RowTable,
    routes: Sequence[Route],
    dtypes: dict[str, torch.dtype],
    rank: int,
    device: Any,
    pad_id: int = 0,
) -> dict[int, dict[str, Tensor]]:
    """Carry out `routes` (the same list on every process): this process sends its source rows
    to their destinations and receives the rows routed to it. `dtypes`: the rows' keys and
    dtypes (the same on every process). Returns {slot: row} for every route that ends here
    (copies). Only the routed rows travel: a header of padded lengths, then the rows key by key."""
    received: dict[int, dict[str, Tensor]] = {}
    outgoing: dict[int, list[int]] = defaultdict(list)  # peer -> source indices
    incoming: dict[int, list[int]] = defaultdict(list)  # peer -> slots
    for src, index, dst, slot in routes:
        if src == rank and dst == rank:
            received[slot] = {key: value.clone() for key, value in source.rows[index].items()}
        elif src == rank:
            outgoing[dst].append(index)
        elif dst == rank:
            incoming[src].append(slot)
    if not (outgoing or incoming):
        return received
    import torch.distributed as dist

    keys = sorted(dtypes)

    def pack(peer: int, key: str) -> Tensor:
        rows = [source.rows[i][key] for i in outgoing[peer]]
        return _pad_stack(rows, key in LEFT_PADDED, _fill_value(key, pad_id))

    # 1. headers: each key's padded length (0 for per-row scalars), so receivers can allocate
    lengths = {peer: [_row_length(source, outgoing[peer], key) for key in keys] for peer in outgoing}
    headers = {peer: torch.empty(len(keys), dtype=torch.long, device=device) for peer in incoming}
    sent = {peer: torch.tensor(lengths[peer], device=device) for peer in sorted(outgoing)}
    requests = [dist.isend(tensor, peer) for peer, tensor in sent.items()]  # kept alive: `sent`
    requests += [dist.irecv(header, peer) for peer, header in sorted(headers.items())]
    for request in requests:
        request.wait()
    # 2. the rows, one key at a time (only one key's packed copies exist at once)
    buffers: dict[int, dict[str, Tensor]] = {peer: {} for peer in incoming}
    for k, key in enumerate(keys):
        packed = {peer: _to_wire(pack(peer, key)).contiguous() for peer in sorted(outgoing)}
        requests = [dist.isend(tensor, peer) for peer, tensor in packed.items()]
        for peer, slots in sorted(incoming.items()):
            length = int(headers[peer][k])
            shape = (len(slots), length) if length else (len(slots),)
            wire = torch.uint8 if dtypes[key] == torch.bool else dtypes[key]
            buffers[peer][key] = torch.empty(shape, dtype=wire, device=device)
            requests.append(dist.irecv(buffers[peer][key], peer))
        for request in requests:
            request.wait()
        del packed
    for peer, slots in incoming.items():
        for i, slot in enumerate(slots):
            received[slot] = {key: buffers[peer][key][i].to(dtypes[key]) for key in keys}
    return received


def _row_length(source: RowTable, indices: Sequence[int], key: str) -> int:
    """The padded length of rows `indices`' `key` (0 for per-row scalars)."""
    rows = [source.rows[i][key] for i in indices]
    return max(row.size(0) for row in rows) if rows[0].dim() else 0


def _to_wire(value: Tensor) -> Tensor:
    return value.to(torch.uint8) if value.dtype == torch.bool else value
