"""The Hugging Face Hub through ``huggingface_hub``: config.json and safetensors headers, never weights. EDGE.

What is fetched for ``org/name[@revision]`` (a GGUF repo, ``org/name[:QUANT]``, is read by
``hub_gguf``: its file list, then the chosen file's header by range requests):

1. ``config.json`` (and ``model.safetensors.index.json`` when the repo has one) with
   ``hf_hub_download``, into the usual Hugging Face cache;
2. of every shard, the 8-byte header length and the JSON header, by HTTP range requests
   (``Range: bytes=0-99999`` first, as huggingface_hub's own ``parse_safetensors_file_metadata``
   does, then the rest of the header if it is longer). The body is read only up to the header's
   end even when a server ignores the range, and a header over the cap is refused before it is
   fetched. Headers are kept under ``$HF_HOME/fitcalc/safetensors-headers/`` by commit, so a second
   run needs no network.

Environment (read at each call, so it can change between calls): ``HF_ENDPOINT`` (mirror or test
server), ``HF_TOKEN`` (gated and private repos), ``HF_HUB_OFFLINE=1`` (cache only), ``HF_HOME`` /
``HF_HUB_CACHE`` (where the cache is), ``FITCALC_HUB_TIMEOUT`` (seconds a request may wait for
its next bytes, default 10), ``FITCALC_HUB_DEADLINE`` (seconds the whole read of one model may
take, default 60: a server that sends one byte a second never trips a per-read timeout).
A first request that cannot reach the Hub falls back to the cache as well.

What the Hub sends is checked like a local folder: shard names in the index must be plain file
names (``../../evil.safetensors`` is refused before anything is fetched or cached), and a
config.json whose Content-Length is over the cap (``safetensors.MAX_JSON_BYTES``) is refused
before it is downloaded.

Every failure is one :class:`HubError` line with a hint: gated repo, not found, revision not
found, no network, timeout, offline and not cached.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fitcalc.core.checkpoint import CheckpointTable, FileRecord, TensorRecord
from fitcalc.core.errors import ModelSourceError
from fitcalc.edges.ingest import safetensors as st
from fitcalc.core.spec import ModelSpec

FIRST_RANGE = 100_000  # bytes asked for first: most headers fit (huggingface_hub uses the same figure)
_TRUE = {"1", "ON", "YES", "TRUE"}
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")

# What a Hub read is doing, for a person watching (issue #16: progress for work over about a second).
# The shell sets it through ``reporting_progress``; None (the default, and for every library caller)
# keeps reads silent. Shard headers are read on threads, so calls may come from any of them.
_progress: list = []


class reporting_progress:  # noqa: N801 - used as a context manager, like contextlib's
    """``with reporting_progress(fn):`` Hub reads inside call ``fn(message)`` at each request."""

    def __init__(self, fn):
        self.fn = fn

    def __enter__(self):
        _progress.append(self.fn)
        return self

    def __exit__(self, *exc) -> None:
        _progress.remove(self.fn)


def say(message: str) -> None:
    """Tell the watcher, if any, what is being read now."""
    for fn in list(_progress):
        fn(message)


class HubError(ModelSourceError):
    """The Hub could not give what was asked: one line saying why, with a hint."""


@dataclass(frozen=True)
class HubSettings:
    endpoint: str
    offline: bool
    hf_home: Path
    hub_cache: Path
    header_cache: Path
    token: str | None
    timeout: float
    deadline: float = 60.0  # seconds for the whole read of one model
    until: float | None = None  # time.monotonic() at which the read in progress gives up

    @classmethod
    def from_env(cls) -> HubSettings:
        env = os.environ
        xdg = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = Path(os.path.expanduser(env.get("HF_HOME") or os.path.join(xdg, "huggingface")))
        hub_cache = Path(os.path.expanduser(env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
                                            or home / "hub"))
        try:
            timeout = float(env.get("FITCALC_HUB_TIMEOUT") or 10)
        except ValueError:
            timeout = 10.0
        try:
            deadline = float(env.get("FITCALC_HUB_DEADLINE") or 60)
        except ValueError:
            deadline = 60.0
        return cls(
            endpoint=(env.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/"),
            offline=(env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or "").upper() in _TRUE,
            hf_home=home, hub_cache=hub_cache,
            header_cache=Path(env.get("FITCALC_CACHE_DIR") or home / "fitcalc") / "safetensors-headers",
            token=env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None,
            timeout=timeout, deadline=deadline,
        )


def split_ref(ref: str) -> tuple[str, str]:
    """``org/name@rev`` -> (``org/name``, ``rev``); the revision defaults to ``main``."""
    repo, _, rev = ref.partition("@")
    return repo, rev or "main"


def _hf():
    try:
        import huggingface_hub
    except ImportError:  # pragma: no cover - a declared dependency
        raise HubError("reading from the Hub needs the huggingface_hub package",
                       hint="pip install huggingface_hub") from None
    return huggingface_hub


# ---------------------------------------------------------------------------------------------
# Errors: one line each
# ---------------------------------------------------------------------------------------------


def _translate(e: BaseException, repo: str, rev: str, s: HubSettings, what: str) -> HubError:
    """One HubError line for whatever huggingface_hub or the HTTP client raised."""
    from huggingface_hub import errors as he

    httpx2 = _http_module()
    cause = e
    # hf_hub_download wraps connection failures in LocalEntryNotFoundError; the cause says which.
    while isinstance(cause, he.LocalEntryNotFoundError) and cause.__cause__ is not None:
        cause = cause.__cause__
    where = f"{repo}@{rev}" if rev != "main" else repo
    if isinstance(cause, he.GatedRepoError):
        return HubError(f"{where} is a gated repo: access to {what} was refused",
                        hint="accept the model's terms on its Hub page, then set HF_TOKEN to a token of that account")
    if isinstance(cause, he.RevisionNotFoundError):
        return HubError(f"{where}: revision {rev!r} not found on the Hub", hint="check the branch, tag or commit")
    if isinstance(cause, he.RepositoryNotFoundError):
        return HubError(f"{repo}: no such model repo on {s.endpoint} (or it is private)",
                        hint="check the name (org/name); for a private repo set HF_TOKEN")
    if isinstance(cause, he.EntryNotFoundError):
        err = HubError(f"{where}: the repo has no {what}",
                       hint="fitcalc reads Hugging Face checkpoints (config.json + safetensors) and GGUF repos "
                            "(org/name:QUANT)")
        err.missing = what  # load_hub_model reads a repo without config.json as a GGUF repo
        return err
    if isinstance(cause, he.OfflineModeIsEnabled):
        return _offline_error(repo, rev, what)
    if isinstance(cause, httpx2.TimeoutException):
        return HubError(f"{where}: the Hub did not answer within {s.timeout:g} s while fetching {what}",
                        hint="retry, or raise FITCALC_HUB_TIMEOUT; a run that finished once works offline")
    if isinstance(cause, (httpx2.ConnectError, httpx2.NetworkError, httpx2.RemoteProtocolError)):
        return HubError(f"{where}: cannot reach {s.endpoint} ({type(cause).__name__})",
                        hint="check the network or HF_ENDPOINT; models fetched before work offline (HF_HUB_OFFLINE=1)")
    if isinstance(cause, he.HfHubHTTPError) and cause.response is not None:
        code = cause.response.status_code
        if code in (401, 403):
            return HubError(f"{where}: the Hub refused access to {what} (HTTP {code})",
                            hint="set HF_TOKEN to a token that can read this repo")
        return HubError(f"{where}: the Hub answered HTTP {code} for {what}", hint="retry later")
    if isinstance(cause, he.LocalEntryNotFoundError):
        return _offline_error(repo, rev, what)
    return HubError(f"{where}: fetching {what} failed ({type(cause).__name__}: {str(cause).splitlines()[0][:120]})",
                    hint="retry; set FITCALC_DEBUG=1 for the traceback")


def _offline_error(repo: str, rev: str, what: str) -> HubError:
    return HubError(f"{repo}@{rev}: offline and {what} is not in the local cache",
                    hint="run once with network access (unset HF_HUB_OFFLINE), then it works offline")


# ---------------------------------------------------------------------------------------------
# Header cache: raw 8-byte prefix + JSON header per shard and commit
# ---------------------------------------------------------------------------------------------


def _cache_path(s: HubSettings, repo: str, commit: str, filename: str) -> Path:
    return s.header_cache / ("models--" + repo.replace("/", "--")) / commit / (filename + ".header")


def _cache_get(s: HubSettings, repo: str, commit: str, filename: str) -> tuple[bytes, int | None] | None:
    p = _cache_path(s, repo, commit, filename)
    try:
        raw = p.read_bytes()
        size_text = p.with_suffix(".size").read_text().strip()
    except OSError:
        return None
    return raw, int(size_text) if size_text.isdigit() else None


def _cache_put(s: HubSettings, repo: str, commit: str, filename: str, raw: bytes, size: int | None) -> None:
    p = _cache_path(s, repo, commit, filename)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(raw)
        p.with_suffix(".size").write_text("" if size is None else str(size))
        os.replace(tmp, p)
    except OSError:
        pass  # a cache that cannot be written only costs a re-fetch next time


# ---------------------------------------------------------------------------------------------
# Range requests
# ---------------------------------------------------------------------------------------------

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _read_capped(resp: Any, limit: int, until: float | None = None) -> bytes:
    """At most ``limit`` bytes of a streamed body: the weights after a header are never read. Past
    ``until`` (monotonic seconds) the read stops with ``TimeoutError``: a trickle never ends otherwise."""
    chunks, got = [], 0
    for chunk in resp.iter_bytes():
        if until is not None and time.monotonic() > until:
            raise TimeoutError("the Hub read went past its deadline")
        chunks.append(chunk)
        got += len(chunk)
        if got >= limit:
            break
    return b"".join(chunks)[:limit]


def _range_get(url: str, start: int, length: int, headers: dict[str, str], timeout: float,
               until: float | None = None) -> tuple[bytes, int | None]:
    """Bytes [start, start+length) of a remote file, and the file's size when the server says it."""
    from huggingface_hub.utils import get_session, hf_raise_for_status

    h = {**headers, "Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity"}
    with get_session().stream("GET", url, headers=h, timeout=timeout) as resp:
        if resp.status_code >= 400:
            resp.read()
            hf_raise_for_status(resp)
        size = None
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if resp.status_code == 206 and m:
            if int(m.group(1)) != start:
                raise st.SafetensorsError(f"{url}: the server answered a range starting at {m.group(1)}, "
                                          f"not {start}")
            size = int(m.group(3)) if m.group(3) != "*" else None
            body = _read_capped(resp, length, until)
        else:
            # The server ignored the range and is sending the whole file: read up to what was
            # asked for and drop the connection.
            cl = resp.headers.get("Content-Length")
            size = int(cl) if cl and cl.isdigit() else None
            body = _read_capped(resp, start + length, until)[start:]
    return body, size


def _fetch_header(url: str, where: str, headers: dict[str, str], timeout: float,
                  until: float | None = None) -> tuple[bytes, int | None]:
    """The 8-byte length and the JSON header of a remote safetensors file."""
    first, size = _range_get(url, 0, FIRST_RANGE, headers, timeout, until)
    n = st.header_length(first[:8], where, size)  # refuses a lying length before fetching it
    if 8 + n <= len(first):
        return first[: 8 + n], size
    rest, _ = _range_get(url, len(first), 8 + n - len(first), headers, timeout, until)
    raw = first + rest
    if len(raw) < 8 + n:
        raise st.SafetensorsError(f"{where}: truncated: the header claims {n:,} bytes, the server sent "
                                  f"{len(raw) - 8:,}", hint="retry; the file may be incomplete on the server")
    return raw, size


def _parse_cached(raw: bytes, size: int | None, filename: str, where: str
                  ) -> tuple[list[TensorRecord], dict, FileRecord]:
    n = st.header_length(raw[:8], where, size)
    if len(raw) < 8 + n:
        raise st.SafetensorsError(f"{where}: truncated header", hint="delete the fitcalc cache entry and retry")
    tensors, meta = st.parse_header(raw[8: 8 + n], where=where, file=filename,
                                    data_size=None if size is None else size - 8 - n)
    return tensors, meta, FileRecord(name=filename, header_bytes=8 + n, file_bytes=size,
                                     data_bytes=sum(t.nbytes for t in tensors))


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


@dataclass
class HubCheckpoint:
    repo: str
    revision: str
    commit: str
    config: dict
    table: CheckpointTable | None
    from_cache: bool


def _load_json(path: str, what: str) -> Any:
    return st.read_json_capped(Path(path), what)


def _cached_file(hf, s: HubSettings, repo: str, filename: str, revision: str) -> Any:
    return hf.try_to_load_from_cache(repo, filename, cache_dir=str(s.hub_cache), revision=revision)


def fetch_hub_checkpoint(ref: str, settings: HubSettings | None = None) -> HubCheckpoint:
    """config.json, the shard index and every shard's header for ``org/name[@revision]``."""
    s = settings or HubSettings.from_env()
    repo, rev = split_ref(ref)
    hf = _hf()
    from huggingface_hub import constants as hc

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; its HTTP session refuses every request
    # while that copy says offline. Keep it in step with the environment as it is now.
    hc.HF_HUB_OFFLINE = s.offline
    say(f"{repo}: config.json")
    config_path, offline = _hub_config(hf, s, repo, rev)
    commit = Path(config_path).parent.name
    if not _COMMIT_RE.match(commit):
        raise HubError(f"{repo}: the cache holds config.json outside a commit snapshot ({config_path})",
                       hint="clear that entry of the Hugging Face cache and retry")
    config = _load_json(config_path, "config.json")
    index_path = _hub_index(hf, s, repo, rev, commit, offline)
    weight_map, total, files = _shards_of(index_path, repo)
    headers = _auth_headers(s)

    done = [0]
    lock = threading.Lock()

    def one(filename: str) -> tuple[list[TensorRecord], dict, FileRecord]:
        part = _hub_header(hf, s, repo, rev, commit, filename, offline, headers, single=index_path is None)
        with lock:
            done[0] += 1
            say(f"{repo}: safetensors headers by range requests, {done[0]:,} of {len(files):,} files")
        return part

    with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
        parts = list(pool.map(one, files))
    table = st.build_table(parts, source=f"{repo}@{commit[:12]}", weight_map=weight_map, index_total=total)
    return HubCheckpoint(repo=repo, revision=rev, commit=commit, config=config, table=table, from_cache=offline)


def _hub_config(hf, s: HubSettings, repo: str, rev: str | None) -> tuple[str, bool]:
    """The cached path of the repo's config.json, downloaded unless offline, and whether the run is
    offline now (an unreachable Hub with the file in the cache answers from the cache)."""
    if s.offline:
        cached = _cached_file(hf, s, repo, "config.json", rev)
        if not isinstance(cached, str):
            raise _offline_error(repo, rev, "config.json")
        return cached, True
    url = hf.hf_hub_url(repo, "config.json", revision=rev, endpoint=s.endpoint)
    try:
        # One HEAD without retries first, so that no network, a timeout or a gated repo is
        # reported at once rather than after huggingface_hub's back-off.
        meta = hf.get_hf_file_metadata(url, token=s.token, timeout=s.timeout, endpoint=s.endpoint)
        if not (meta.size is not None and meta.size > st.MAX_JSON_BYTES):
            return hf.hf_hub_download(repo, "config.json", revision=rev, cache_dir=str(s.hub_cache),
                                      endpoint=s.endpoint, token=s.token, etag_timeout=s.timeout), False
    except Exception as e:  # noqa: BLE001 - translated to one line below
        err = _translate(e, repo, rev, s, "config.json")
        cached = _cached_file(hf, s, repo, "config.json", rev)
        if isinstance(cached, str) and _is_network_failure(e):
            return cached, True  # unreachable: the cache answers, as when offline
        raise err from None
    raise HubError(f"{repo}@{rev}: config.json is {meta.size:,} bytes, over the {st.MAX_JSON_BYTES:,}-byte cap; "
                   "not downloaded", hint="a config.json is a few KiB: is this a model repo?")


def _hub_index(hf, s: HubSettings, repo: str, rev: str | None, commit: str, offline: bool) -> str | None:
    """The cached path of the shard index at ``commit``, or None for a single model.safetensors."""
    from huggingface_hub import errors as he

    cached_index = _cached_file(hf, s, repo, st.INDEX_NAME, commit)
    if isinstance(cached_index, str):
        return cached_index
    if cached_index is not None or offline:
        return None
    try:
        return hf.hf_hub_download(repo, st.INDEX_NAME, revision=commit, cache_dir=str(s.hub_cache),
                                  endpoint=s.endpoint, token=s.token, etag_timeout=s.timeout)
    except he.EntryNotFoundError:
        return None
    except Exception as e:  # noqa: BLE001
        raise _translate(e, repo, rev, s, st.INDEX_NAME) from None


def _shards_of(index_path: str | None, repo: str) -> tuple[dict[str, str] | None, int | None, list[str]]:
    """The index's weight map, its total_size and the shard files (a single model.safetensors without one)."""
    if index_path is None:
        return None, None, [st.SINGLE_NAME]
    index = _load_json(index_path, "the shard index")
    wm = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wm, dict) or not wm or not all(isinstance(v, str) for v in wm.values()):
        raise HubError(f"{repo}: {st.INDEX_NAME} has no usable weight_map", hint="the repo's index is damaged")
    st.check_shard_names(wm.values(), f"{repo}: {st.INDEX_NAME}")
    md = index.get("metadata") if isinstance(index.get("metadata"), dict) else {}
    t = md.get("total_size")
    total = int(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else None
    return wm, total, sorted(set(wm.values()))


def _hub_header(hf, s: HubSettings, repo: str, rev: str | None, commit: str, filename: str, offline: bool,
                headers: dict[str, str], single: bool) -> tuple[list[TensorRecord], dict, FileRecord]:
    """One shard's safetensors header: from fitcalc's header cache, else by range requests (then cached)."""
    where = f"{repo}@{commit[:12]}/{filename}"
    hit = _cache_get(s, repo, commit, filename)
    if hit is not None:
        return _parse_cached(hit[0], hit[1], filename, where)
    if offline:
        raise _offline_error(repo, rev, f"the header of {filename}")
    url = hf.hf_hub_url(repo, filename, revision=commit, endpoint=s.endpoint)
    try:
        raw, size = _fetch_header(url, where, headers, s.timeout, s.until)
    except st.SafetensorsError:
        raise
    except Exception as e:  # noqa: BLE001
        if single and _is_not_found(e):
            raise HubError(f"{repo}: no model.safetensors.index.json and no model.safetensors",
                           hint="fitcalc reads safetensors checkpoints and GGUF repos (org/name:QUANT)") from None
        raise _translate(e, repo, rev, s, f"the header of {filename}") from None
    parsed = _parse_cached(raw, size, filename, where)  # validate before caching
    _cache_put(s, repo, commit, filename, raw, size)
    return parsed


def _auth_headers(s: HubSettings) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    return build_hf_headers(token=s.token, library_name="fitcalc")


def _http_module():
    """The HTTP client huggingface_hub uses (httpx2 in 2.x, httpx before), for its exception types."""
    try:
        import httpx2
    except ImportError:  # pragma: no cover - older huggingface_hub
        import httpx as httpx2  # type: ignore[no-redef]
    return httpx2


def _is_network_failure(e: BaseException) -> bool:
    from huggingface_hub import errors as he

    httpx2 = _http_module()

    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, (httpx2.TimeoutException, httpx2.NetworkError, he.OfflineModeIsEnabled)):
            return True
        if isinstance(cause, he.HfHubHTTPError) and cause.response is not None \
                and cause.response.status_code >= 500:
            return True
        cause = cause.__cause__
    return False


def _is_not_found(e: BaseException) -> bool:
    from huggingface_hub import errors as he

    return isinstance(e, (he.EntryNotFoundError,)) or (
        isinstance(e, he.HfHubHTTPError) and e.response is not None and e.response.status_code == 404)


def _within_deadline(ref: str, s: HubSettings) -> HubCheckpoint:
    """``fetch_hub_checkpoint`` with a deadline on the whole read (``s.deadline``), not per request.

    huggingface_hub's downloads take a timeout per read, which a server sending a byte a second
    never trips (issue #17: killed after 300 s). The fetch runs in a daemon thread that is left
    behind at the deadline; fitcalc's own range reads also stop there (``_read_capped``), so the
    header threads end by themselves and nothing keeps the process from exiting.
    """
    s = dataclasses.replace(s, until=time.monotonic() + s.deadline)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fetch_hub_checkpoint(ref, s)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = e

    worker = threading.Thread(target=run, name="fitcalc-hub-read", daemon=True)
    worker.start()
    worker.join(s.deadline)
    if worker.is_alive():
        raise HubError(f"{ref}: reading config.json, the index and the headers took over {s.deadline:g} s "
                       f"(the server at {s.endpoint} answers too slowly)",
                       hint="retry later, or set FITCALC_HUB_DEADLINE to more seconds")
    if "error" in box:
        raise box["error"]
    return box["value"]


def load_hub_model(ref: str) -> ModelSpec:
    """A ModelSpec for a Hub repo: its config.json and its header-exact tensor table; for a GGUF repo
    (``org/name:QUANT``, or a repo without config.json) ingest.resolve_model calls ``hub_gguf``."""
    from fitcalc.edges.ingest.hf_config import spec_from_hf

    s = HubSettings.from_env()
    ckpt = _within_deadline(ref, s)
    source = f"{ckpt.repo}@{ckpt.commit[:12]}"
    spec = spec_from_hf(ckpt.config, ckpt.table, name=ckpt.repo, source=source, hf_repo=ckpt.repo,
                        config_url=f"{s.endpoint}/{ckpt.repo}/blob/{ckpt.commit}/config.json")
    if ckpt.from_cache and not s.offline:
        spec = spec.model_copy(update={"warnings": [*spec.warnings,
                                                    f"could not reach {s.endpoint}; read {source} from the cache"]})
    return spec



# What hub_gguf shares with the safetensors path (one HTTP and error layer for both).
auth_headers, hf_module, offline_error, range_get, translate = _auth_headers, _hf, _offline_error, _range_get, _translate
