"""GGUF repos on the Hugging Face Hub: the header of the chosen .gguf file by HTTP range requests. EDGE.

``org/name[:QUANT][@revision]`` names a repo of GGUF files (``unsloth/Qwen3-30B-A3B-GGUF:Q5_K_M``,
the form llama-server's ``-hf`` takes). fitcalc asks the Hub for the repo's file list (one API call,
``HfApi.model_info``: the commit and the file names), picks the file as ``llama-server -hf`` does
(the file whose name holds QUANT, case ignored; without QUANT, Q4_K_M, else the first .gguf:
llama.cpp common/arg.cpp @ 145b6280d6aa1890e22457143dad0badb3fd6820, ``-hf`` help), and reads its
header (metadata and tensor table) the way safetensors headers are read in ``hub``: by range
requests, a block at a time as the parser reaches it (2 MiB, then twice the last), never the
tensor data. A split model (``NAME-00001-of-00003.gguf``) is read part by part.

The GGUF parser is the local one (``gguf.read_gguf_stream``) over :class:`RangeFile`, so a Hub
file and a downloaded file give the same ModelSpec byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path

from fitcalc.core.spec import ModelSpec
from fitcalc.edges.ingest import gguf
from fitcalc.edges.ingest.hub import (
    HubError,
    HubSettings,
    auth_headers,
    hf_module,
    offline_error,
    range_get,
    say,
    translate,
)

DEFAULT_QUANT = "Q4_K_M"  # llama-server -hf: "quant is optional, case-insensitive, default to Q4_K_M"
FIRST_BLOCK = 2 << 20  # bytes asked for first; a gpt-oss GGUF header (tokenizer included) is ~4 MiB
MAX_BLOCK = 64 << 20
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.I)


class RangeFile:
    """A remote file as ``read(n)`` / ``seek(n, 1)`` for the GGUF parser: blocks fetched by HTTP
    range requests where the parser reads, each block twice the last; bytes skipped past a block
    (arrays the parser does not keep) are never fetched. ``size`` is the file's, from Content-Range."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float):
        self.url, self.headers, self.timeout = url, headers, timeout
        self.pos = 0
        self.buf = b""
        self.start = 0
        self.block = FIRST_BLOCK
        self.fetched = 0  # bytes received, for tests and the curious
        self.size: int | None = None
        self._fill(0, 8)
        if self.size is None:
            raise HubError(f"{url}: the server did not say the file's size", hint="retry; the Hub sends it")

    def _fill(self, pos: int, n: int) -> None:
        data, size = range_get(self.url, pos, max(n, self.block), self.headers, self.timeout)
        self.size = size if size is not None else self.size
        self.buf, self.start = data, pos
        self.fetched += len(data)
        self.block = min(self.block * 2, MAX_BLOCK)

    def read(self, n: int) -> bytes:
        if not (self.start <= self.pos and self.pos + n <= self.start + len(self.buf)):
            self._fill(self.pos, n)
        off = self.pos - self.start
        out = self.buf[off:off + n]
        self.pos += len(out)
        return out

    def seek(self, n: int, whence: int = 0) -> int:
        self.pos = self.pos + n if whence == 1 else n
        return self.pos


def split_quant(ref: str) -> tuple[str, str | None]:
    """``org/name:QUANT@rev`` -> (``org/name@rev``, ``QUANT``); no ``:`` -> (ref, None)."""
    base, at, rev = ref.partition("@")
    repo, _, quant = base.partition(":")
    return repo + at + rev, quant or None


def pick_files(files: list[str], quant: str | None, repo: str) -> list[str]:
    """The .gguf file(s) ``llama-server -hf repo[:quant]`` would load: every part of a split."""
    ggufs = sorted(f for f in files if f.lower().endswith(".gguf") and "mmproj" not in Path(f).name.lower())
    if not ggufs:
        raise HubError(f"{repo}: no config.json and no .gguf file in the repo",
                       hint="fitcalc reads safetensors checkpoints (config.json) and GGUF repos")
    want = (quant or DEFAULT_QUANT).lower()
    hits = [f for f in ggufs if want in Path(f).name.lower()]
    if not hits:
        if quant is not None:
            shown = ", ".join(Path(f).name for f in ggufs[:8]) + (" ..." if len(ggufs) > 8 else "")
            raise HubError(f"{repo}: no .gguf file named like {quant!r}",
                           hint=f"write {repo}:QUANT with a type one of these names holds: {shown}")
        hits = ggufs[:1]  # -hf's fallback: the first file of the repo
    first = hits[0]
    m = _SPLIT.match(Path(first).name)
    if m is None:
        return [first]
    folder = str(Path(first).parent) if "/" in first else ""
    count = int(m["count"])
    parts = [(f"{folder}/" if folder else "") + f"{m['stem']}-{k:05d}-of-{count:05d}.gguf" for k in range(1, count + 1)]
    missing = [p for p in parts if p not in ggufs]
    if missing:
        raise HubError(f"{repo}: split part {missing[0]} is not in the repo", hint="the repo's split is incomplete")
    return parts


def load_hub_gguf(ref: str, settings: HubSettings | None = None) -> ModelSpec:
    """A ModelSpec of the GGUF file ``org/name[:QUANT][@rev]`` names, from its header read by ranges."""
    s = settings or HubSettings.from_env()
    plain, quant = split_quant(ref)
    repo, _, rev = plain.partition("@")
    rev = rev or "main"
    if s.offline:
        raise offline_error(repo, rev, "the file list of a GGUF repo")
    hf = hf_module()
    from huggingface_hub import HfApi
    from huggingface_hub import constants as hc

    hc.HF_HUB_OFFLINE = False
    say(f"{repo}: the file list")
    try:
        info = HfApi(endpoint=s.endpoint, token=s.token).model_info(repo, revision=rev, timeout=s.timeout)
    except Exception as e:  # noqa: BLE001 - translated to one line
        raise translate(e, repo, rev, s, "the file list") from None
    commit = info.sha or rev
    names = pick_files([x.rfilename for x in info.siblings or []], quant, repo)
    headers = auth_headers(s)
    parsed = []
    for i, name in enumerate(names, 1):
        say(f"{repo}: the GGUF header of {name} by range requests ({i:,} of {len(names):,})")
        where = f"{repo}@{commit[:12]}/{name}"
        url = hf.hf_hub_url(repo, name, revision=commit, endpoint=s.endpoint)
        try:
            f = RangeFile(url, headers, s.timeout)
        except HubError:
            raise
        except Exception as e:  # noqa: BLE001
            raise translate(e, repo, rev, s, f"the header of {name}") from None
        parsed.append((where, gguf.read_gguf_stream(f, where, f.size or 0, Path(name).name)))
    h = gguf.merge_split(parsed[0][1], parsed[0][0], parsed[1:]) if len(parsed) > 1 else parsed[0][1]
    return gguf.spec_from_gguf(h, Path(names[0]).name, parsed[0][0], hf_repo=repo)


__all__ = ["RangeFile", "load_hub_gguf", "pick_files", "split_quant", "DEFAULT_QUANT"]
