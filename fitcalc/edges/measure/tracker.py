"""Live tensor-storage accounting, by tag. EDGE (torch).

A ``TorchDispatchMode`` sees every tensor a torch op returns. When an op returns a tensor whose
storage is new, its bytes are added to the live total under the current tag (``weights.experts``,
``kv.full``, ``act.prefill``, ...) and a weak reference on the storage takes them off again when
torch frees it. Storage Python objects are preserved by torch for as long as the storage lives,
so the callback fires exactly when the memory is released.

The mode costs a Python call per torch op (~10-20 us, more than many GPU kernels take), so
the prefill tracks only the chunks that can hold its peak (``Stack.prefill``) and runs the others
``paused()``.

This is what "measured" means on a CPU, where torch has no allocator statistics: the peak of the
sum of live tensor storages, overall and per tag, per phase. It counts what torch ops allocate
as tensors; scratch a kernel allocates internally (oneDNN, the flash-attention kernel's per-thread
buffers) and malloc's own overhead are not seen: the process RSS is reported beside it for that.
On CUDA the same accounting runs beside ``torch.cuda``'s allocator counters.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field

from fitcalc.edges.measure import require_torch

torch = require_torch()
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402


@dataclass
class PhaseStats:
    name: str
    start_live: int = 0
    peak: int = 0  # highest live total during the phase
    end_live: int = 0
    tag_peak: dict[str, int] = field(default_factory=dict)  # highest live bytes of each tag during the phase
    at_peak: dict[str, int] = field(default_factory=dict)  # live bytes by tag at the moment of the peak


class _Tag:
    __slots__ = ("_stack", "_item")

    def __init__(self, stack: list, item: tuple) -> None:
        self._stack, self._item = stack, item

    def __enter__(self) -> None:
        self._stack.append(self._item)

    def __exit__(self, *exc) -> None:
        self._stack.pop()


class StorageTracker(TorchDispatchMode):
    """Tracks tensor storages created while active. Use as a context manager; tag with ``tag()``."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.by_tag: dict[str, int] = {}
        self.by_tag_layer: dict[tuple[str, int | None], int] = {}
        self._seen: dict[int, tuple[int, str, int | None]] = {}
        self._refs: dict[int, weakref.ref] = {}
        self._tags: list[tuple[str, int | None]] = [("untagged", None)]
        self._phase: PhaseStats | None = None
        self.phases: list[PhaseStats] = []

    # ---- tagging and phases --------------------------------------------------------------

    def tag(self, name: str, layer: int | None = None) -> "_Tag":
        """Attribute storages created inside to ``name`` (and ``layer``). A plain class, not a
        generator context manager: the stack enters one per expert matrix, thousands a second."""
        return _Tag(self._tags, (name, layer))

    @contextlib.contextmanager
    def phase(self, name: str):
        ph = PhaseStats(name=name, start_live=self.live, peak=self.live,
                        tag_peak={k: v for k, v in self.by_tag.items() if v}, at_peak=dict(self.by_tag))
        self._phase = ph
        try:
            yield ph
        finally:
            ph.end_live = self.live
            self._phase = None
            self.phases.append(ph)

    @contextlib.contextmanager
    def paused(self):
        """Run torch ops unseen (``fitcalc.edges.measure.stack.Stack.prefill`` between the chunks that
        can hold the peak). Storages created meanwhile are not counted; a counted storage freed
        meanwhile still comes off, since its weak reference fires whatever mode is active."""
        from torch.utils._python_dispatch import _disable_current_modes

        with _disable_current_modes():
            yield

    def phase_stats(self, name: str) -> PhaseStats | None:
        for p in self.phases:
            if p.name == name:
                return p
        return None

    # ---- accounting ---------------------------------------------------------------------

    def _add(self, t) -> None:
        if not isinstance(t, torch.Tensor) or t.is_meta:
            return
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):
            return
        key = id(st)
        if key in self._seen:
            return
        n = st.nbytes()
        tag, layer = self._tags[-1]
        self._seen[key] = (n, tag, layer)
        self._refs[key] = weakref.ref(st, lambda _r, key=key: self._free(key))
        self.live += n
        self.by_tag[tag] = self.by_tag.get(tag, 0) + n
        self.by_tag_layer[(tag, layer)] = self.by_tag_layer.get((tag, layer), 0) + n
        if self.live > self.peak:
            self.peak = self.live
        ph = self._phase
        if ph is not None:
            if self.by_tag[tag] > ph.tag_peak.get(tag, 0):
                ph.tag_peak[tag] = self.by_tag[tag]
            if self.live > ph.peak:
                ph.peak = self.live
                ph.at_peak = dict(self.by_tag)

    def _free(self, key: int) -> None:
        rec = self._seen.pop(key, None)
        self._refs.pop(key, None)
        if rec is None:
            return
        n, tag, layer = rec
        self.live -= n
        self.by_tag[tag] -= n
        self.by_tag_layer[(tag, layer)] -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):  # most ops: one tensor, no pytree walk
            self._add(out)
        elif isinstance(out, (tuple, list)) and all(isinstance(t, torch.Tensor) or t is None for t in out):
            for t in out:
                self._add(t)
        else:
            for t in tree_flatten(out)[0]:
                self._add(t)
        return out

    def adopt(self, t) -> None:
        """Count a tensor created outside the mode (none should be; kept for callers' own buffers)."""
        self._add(t)


__all__ = ["StorageTracker", "PhaseStats"]
