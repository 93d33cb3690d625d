"""The collectives a sharded stack runs, on torch.distributed. EDGE (torch).

One ``Collectives`` per process: its global rank, the pipeline stage it belongs to, and the
process group of that stage's tensor-parallel ranks (expert parallelism runs over the same ranks:
``--ep`` equals ``--tp`` in verify). Every call first says what the rank is about to wait for
(``status``), so a supervisor that finds the run stuck can tell a rank waiting in a collective
from the rank that stopped answering.

Ranks are numbered as vLLM numbers them: rank = stage x tp + tp_rank (stage-major).
"""

from __future__ import annotations

from collections.abc import Callable

from fitcalc.edges.measure import require_torch

torch = require_torch()
dist = torch.distributed


class Collectives:
    def __init__(self, rank: int, world: int, tp: int, pp: int, status: Callable[[str], None] | None = None):
        self.rank, self.world, self.tp, self.pp = rank, world, tp, pp
        self.stage, self.tp_rank = divmod(rank, tp)
        self.status = status or (lambda _what: None)
        self.group = None  # None = the default group (one stage)
        if pp > 1:
            # every rank creates every stage's group, in the same order (torch.distributed.new_group)
            for s in range(pp):
                g = dist.new_group(list(range(s * tp, (s + 1) * tp)))
                if s == self.stage:
                    self.group = g
        self._gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor

    @property
    def group_size(self) -> int:
        return self.tp

    @property
    def first(self) -> bool:
        return self.stage == 0

    @property
    def last(self) -> bool:
        return self.stage == self.pp - 1

    def _wait(self, what: str) -> None:
        self.status(f"waiting in {what}")

    def _done(self) -> None:
        self.status("")

    def all_reduce(self, x, where: str) -> None:
        self._wait(f"all_reduce ({where})")
        dist.all_reduce(x, group=self.group)
        self._done()

    def all_gather(self, x, where: str):
        """[tp, *x.shape]: every TP rank's x, in rank order."""
        out = torch.empty((self.tp * x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
        self._wait(f"all_gather ({where})")
        self._gather(out, x.contiguous(), group=self.group)  # concatenated along dim 0 (gloo's form)
        self._done()
        return out.view(self.tp, *x.shape)

    def send_next(self, x, where: str) -> None:
        self._wait(f"send to rank {self.rank + self.tp} ({where})")
        dist.send(x.contiguous(), dst=self.rank + self.tp)
        self._done()

    def recv_prev(self, shape, dtype, device, where: str):
        x = torch.empty(shape, dtype=dtype, device=device)
        self._wait(f"recv from rank {self.rank - self.tp} ({where})")
        dist.recv(x, src=self.rank - self.tp)
        self._done()
        return x

    def send_token(self, ids, where: str) -> None:
        """Last stage -> the same TP rank of the first stage."""
        dst = self.tp_rank
        self._wait(f"send to rank {dst} ({where})")
        dist.send(ids.reshape(-1).to(torch.int64).contiguous(), dst=dst)
        self._done()

    def recv_token(self, batch: int, device, where: str):
        src = (self.pp - 1) * self.tp + self.tp_rank
        ids = torch.empty(batch, dtype=torch.int64, device=device)
        self._wait(f"recv from rank {src} ({where})")
        dist.recv(ids, src=src)
        self._done()
        return ids


__all__ = ["Collectives"]
