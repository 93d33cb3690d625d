"""A Hugging Face Hub stand-in on loopback: the routes huggingface_hub 2.x calls, with HTTP ranges.

Routes (as huggingface_hub's file_download.py and hf_api.py call them):
  GET /api/models/{org}/{name}[/revision/{revision}]
      the repo's commit and file names (HfApi.model_info), as JSON
  HEAD/GET /{org}/{name}/resolve/{revision}/{path}
      200 with X-Repo-Commit, ETag, Content-Length, Accept-Ranges (HEAD answers like GET without
      a body); a Range request gets 206 with Content-Range. Large files (*.safetensors, *.gguf) are
      redirected, like LFS files on the Hub, to /cdn/{commit}/{path} on the same server, and HEAD
      on them carries X-Linked-Etag and X-Linked-Size.
  Errors carry the headers hf_raise_for_status reads: X-Error-Code RepoNotFound (404),
      RevisionNotFound (404), EntryNotFound (404, with X-Repo-Commit), GatedRepo (401 without
      the right bearer token).
Every request is logged with the bytes of body sent, so tests can check that weights are never
downloaded. ``delay`` makes chosen paths answer late (timeouts); ``drip`` makes them send their
body one byte at a time, that many seconds apart (a trickle no per-read timeout catches);
``ignore_range`` makes the server send whole files (a server that does not support ranges).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    files: dict[str, Path]  # path in the repo -> local file (sparse for weights)
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit
    gated_token: str | None = None  # if set, only "Bearer <token>" may read

    def resolve(self, rev: str) -> str | None:
        if rev == self.commit or rev in self.branches.values():
            return rev
        if rev == "main":
            return self.commit
        return self.branches.get(rev)


@dataclass
class Logged:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.log: list[Logged] = []
        self.delay: dict[str, float] = {}  # substring of the path -> seconds
        self.drip: dict[str, float] = {}  # substring of the path -> seconds between body bytes
        self.ignore_range = False
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._handle(self, head=True)

            def do_GET(self):
                hub._handle(self, head=False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- helpers for tests ------------------------------------------------------------------

    def body_bytes(self, suffix: str) -> int:
        return sum(x.body_bytes for x in self.log if x.path.endswith(suffix) and x.method == "GET")

    def requests(self) -> int:
        return len(self.log)

    # -- the routes -------------------------------------------------------------------------

    _RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
    _CDN = re.compile(r"^/cdn/(?P<repo>[^/]+/[^/]+)/(?P<commit>[0-9a-f]{40})/(?P<path>.+)$")
    # HfApi.model_info: GET /api/models/{repo} or /api/models/{repo}/revision/{rev} (hf_api.py)
    _API_MODEL = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")

    def _model_info(self, h: BaseHTTPRequestHandler, head: bool, name: str, rev: str, path: str) -> None:
        """The repo's commit and file names, as the Hub's model API answers (the fields fitcalc reads)."""
        import json

        repo = self.repos.get(name)
        if repo is None:
            return self._error(h, head, 404, "RepoNotFound", None, path)
        commit = repo.resolve(unquote(rev))
        if commit is None:
            return self._error(h, head, 404, "RevisionNotFound", None, path)
        body = json.dumps({"_id": name, "id": name, "modelId": name, "sha": commit, "private": False,
                           "siblings": [{"rfilename": f} for f in sorted(repo.files)]}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)
        self._record(h, head, path, 200, 0 if head else len(body))
        return None

    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        for key, secs in self.delay.items():
            if key in path:
                time.sleep(secs)
        m = self._CDN.match(path)
        if m is not None:
            repo = self.repos.get(m["repo"])
            f = repo.files.get(m["path"]) if repo else None
            if f is None:
                return self._error(h, head, 404, "EntryNotFound", None, path)
            return self._file(h, head, f, m["commit"], path, lfs=False)
        m = self._API_MODEL.match(path)
        if m is not None:
            return self._model_info(h, head, m["repo"], m["rev"] or "main", path)
        m = self._RESOLVE.match(path)
        if m is None:
            return self._error(h, head, 404, "RepoNotFound", None, path)
        repo = self.repos.get(m["repo"])
        if repo is None:
            return self._error(h, head, 404, "RepoNotFound", None, path)
        if repo.gated_token is not None and h.headers.get("Authorization") != f"Bearer {repo.gated_token}":
            return self._error(h, head, 401, "GatedRepo", None, path,
                               message=f"Access to model {m['repo']} is restricted. You must have access to it "
                                       "and be authenticated to access it. Please log in.")
        commit = repo.resolve(unquote(m["rev"]))
        if commit is None:
            return self._error(h, head, 404, "RevisionNotFound", None, path)
        f = repo.files.get(m["path"])
        if f is None:
            return self._error(h, head, 404, "EntryNotFound", commit, path)
        if m["path"].endswith((".safetensors", ".gguf")):
            # LFS file: the Hub redirects to its storage; HEAD describes the linked file.
            size = f.stat().st_size
            h.send_response(302)
            h.send_header("Location", f"/cdn/{m['repo']}/{commit}/{m['path']}")
            h.send_header("X-Repo-Commit", commit)
            h.send_header("X-Linked-Etag", f'"{_etag(f)}"')
            h.send_header("X-Linked-Size", str(size))
            h.send_header("ETag", f'"{_etag(f)}"')
            h.send_header("Content-Length", "0")
            h.end_headers()
            self._record(h, head, path, 302, 0)
            return None
        return self._file(h, head, f, commit, path, lfs=False)

    def _file(self, h: BaseHTTPRequestHandler, head: bool, f: Path, commit: str, path: str, lfs: bool) -> None:
        size = f.stat().st_size
        rng = h.headers.get("Range")
        start, end = 0, size - 1
        status = 200
        if rng and not self.ignore_range:
            m = re.match(r"bytes=(\d+)-(\d*)$", rng.strip())
            if m is None or int(m.group(1)) >= size:
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{size}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                self._record(h, head, path, 416, 0)
                return
            start = int(m.group(1))
            end = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
            status = 206
        length = end - start + 1
        h.send_response(status)
        h.send_header("X-Repo-Commit", commit)
        h.send_header("ETag", f'"{_etag(f)}"')
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(length))
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        h.end_headers()
        sent = 0
        drip = next((secs for key, secs in self.drip.items() if key in path), None)
        if not head:
            try:
                with open(f, "rb") as fh:
                    fh.seek(start)
                    while sent < length:
                        if drip is not None:
                            time.sleep(drip)  # wfile is unbuffered: each byte goes out alone
                        chunk = fh.read(1 if drip is not None else min(1 << 16, length - sent))
                        if not chunk:
                            break
                        h.wfile.write(chunk)
                        sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                h.close_connection = True  # the client stopped reading: fine, that is the point
        self._record(h, head, path, status, sent)

    def _error(self, h: BaseHTTPRequestHandler, head: bool, code: int, error_code: str, commit: str | None,
               path: str, message: str | None = None) -> None:
        body = b"" if head else (message or error_code).encode()
        h.send_response(code)
        h.send_header("X-Error-Code", error_code)
        if message:
            h.send_header("X-Error-Message", message)
        if commit:
            h.send_header("X-Repo-Commit", commit)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body:
            h.wfile.write(body)
        self._record(h, head, path, code, len(body))

    def _record(self, h: BaseHTTPRequestHandler, head: bool, path: str, status: int, n: int) -> None:
        with self._lock:
            self.log.append(Logged("HEAD" if head else "GET", path, h.headers.get("Range"), status, n))


def _etag(f: Path) -> str:
    st = f.stat()
    return hashlib.sha256(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()


def repo_from_folder(folder: Path, **kw) -> Repo:
    """Serve every file of a checkpoint folder built by tests/checkpoints.py."""
    return Repo(files={p.name: p for p in folder.iterdir() if p.is_file()}, **kw)


def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = ["HubServer", "Repo", "repo_from_folder", "unused_port"]
