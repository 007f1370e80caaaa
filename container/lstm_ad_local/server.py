"""The real `serve` entrypoint as a local process: start, wait for /ping, talk HTTP, stop.

Used by the local batch transform job (and usable for a local "endpoint"). The
server runs in its own process group so stopping it also stops gunicorn's workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .errors import LocalJobError

logger = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0  # SageMaker's per-ping timeout
STOP_GRACE_S = 30.0  # SageMaker's SIGTERM -> SIGKILL grace for endpoints
LOG_TAIL_CHARS = 4000


def console_script(name: str) -> Path:
    """The package's console script installed beside this interpreter (`train`, `serve`)."""
    path = Path(sys.executable).parent / name
    if not path.is_file():
        raise LocalJobError(f"The `{name}` console script is not next to {sys.executable}: install this "
                            "package in the environment you run (pip install -e . from the repository).")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    if not path.is_file():
        return "(no log)"
    text = path.read_text(errors="replace")
    return text if len(text) <= chars else "...\n" + text[-chars:]


@dataclass(frozen=True)
class Response:
    status: int  # 0 when no HTTP answer came back (connection refused, reset, timeout)
    body: bytes
    content_type: str = ""


class LocalServer:
    """`serve` with SAGEMAKER_BASE_DIR=<base> and SAGEMAKER_BIND_TO_PORT=<free port>; a context manager."""

    def __init__(self, base: Path, command: Sequence[str], environment: Mapping[str, str], log_path: Path,
                 port: int | None = None) -> None:
        self.base = base
        self.command = list(command)
        self.port = port or free_port()
        self.log_path = log_path
        self.environment = {**os.environ, "PYTHONUNBUFFERED": "1", **environment,
                            "SAGEMAKER_BASE_DIR": str(base), "SAGEMAKER_BIND_TO_PORT": str(self.port)}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command, env=self.environment, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        logger.info("Started %s on port %d (log: %s).", " ".join(self.command), self.port, self.log_path)

    def wait_until_ready(self, timeout_s: float) -> float:
        """Poll GET /ping until 200; raise with the server log if it exits or times out. Returns seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process is not None and self.process.poll() is not None:
                raise LocalJobError(f"The server exited with code {self.process.returncode} before answering "
                                    f"/ping. Server log ({self.log_path}):\n{tail(self.log_path)}")
            if self.request("GET", "/ping", timeout_s=PING_TIMEOUT_S).status == 200:
                waited = time.monotonic() - started
                logger.info("Server ready after %.1f s.", waited)
                return waited
            time.sleep(0.2)
        raise LocalJobError(f"The server did not answer /ping with 200 within {timeout_s:g} s. "
                            f"Server log ({self.log_path}):\n{tail(self.log_path)}")

    def execution_parameters(self) -> dict[str, object]:
        """GET /execution-parameters as a dict; {} when the server does not implement it (non-200)."""
        response = self.request("GET", "/execution-parameters", timeout_s=PING_TIMEOUT_S * 5)
        if response.status != 200:
            return {}
        try:
            answer = json.loads(response.body)
        except ValueError as exc:
            raise LocalJobError(f"/execution-parameters answered 200 with invalid JSON: {response.body[:200]!r}"
                                ) from exc
        return answer if isinstance(answer, dict) else {}

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, timeout_s: float = 60.0) -> Response:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310 - local URL
                return Response(answer.status, answer.read(), answer.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.read(), exc.headers.get("Content-Type", ""))
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            return Response(0, str(getattr(exc, "reason", exc)).encode())

    def stop(self) -> None:
        """SIGTERM to the server process, as `docker stop` does; SIGKILL to its whole group after the grace
        period, and to any worker left behind."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("The server did not stop within %.0f s of SIGTERM: killing it.", STOP_GRACE_S)
        # The group outlives its leader while members remain; nothing left is the normal case.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        logger.info("Server stopped.")
