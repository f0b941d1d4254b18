"""A real OPA server (``opa run --server``, built by ``make tools`` into ``.tools/bin/opa``) for tests.

``require_opa()`` returns the binary or skips the test saying why -- except when ``CI=true``, where a
missing binary FAILS the test (CI must run the real-server tests). ``RealOpa`` starts the server on
127.0.0.1 with a free port, telemetry off, and whatever it is asked to load (policy directories, a
bundle with ``--verification-key``, a config file); it can be killed, restarted, paused (SIGSTOP: a
server that accepts connections and never answers) and resumed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
OPA_BIN = Path(os.environ.get("OPA_BIN", str(ROOT / ".tools" / "bin" / "opa")))
POLICIES = ROOT / "policies"


def opa_binary() -> Path | None:
    """The OPA binary when it exists and is executable, else None."""
    return OPA_BIN if OPA_BIN.is_file() and os.access(OPA_BIN, os.X_OK) else None


def require_opa() -> Path:
    """The OPA binary; skip (outside CI) or fail (``CI=true``) when ``make tools`` has not built it."""
    binary = opa_binary()
    if binary is not None:
        return binary
    why = f"no real OPA binary at {OPA_BIN}: run `make tools` (needs Go >= 1.26)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI=true requires the real-server tests to run", pytrace=False)
    pytest.skip(why)


def opa_version() -> str:
    """The version the real OPA binary reports (``opa version``: ``Version: 1.22.3``)."""
    out = subprocess.run(
        [str(require_opa()), "version"], capture_output=True, text=True, timeout=60, check=True
    )
    return next(
        line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if line.startswith("Version:")
    )


def free_port() -> int:
    """A port nothing listens on right now (the kernel's choice for an ephemeral bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealOpa:
    """One ``opa run --server`` process on 127.0.0.1.

    Parameters
    ----------
    paths
        What to load: policy directories or files (``opa run`` arguments).
    args
        Extra ``opa run`` flags (``--bundle``, ``--verification-key``, ``--config-file`` ...).
    port
        Port to listen on; None picks a free one (kept across restarts).
    """

    def __init__(
        self, paths: list[str | Path] | None = None, args: list[str] | None = None, port: int | None = None
    ):
        self.binary = require_opa()
        self.paths = [str(p) for p in (paths if paths is not None else [POLICIES])]
        self.args = list(args or [])
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "run",
            "--server",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--skip-version-check",
            "--log-level",
            "error",
            *self.args,
            *self.paths,
        ]

    def start(self, wait: float = 30.0, expect_ready: bool = True) -> RealOpa:
        """Start the server; wait until ``/health`` answers 200 (or, unless expected, until it exits)."""
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log = self.proc.stdout.read() if self.proc.stdout else b""
                if expect_ready:
                    raise RuntimeError(f"opa exited {self.proc.returncode}: {self.log.decode()[-2000:]}")
                return self
            try:
                if requests.get(self.url + "/health?bundles", timeout=0.5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"opa did not become healthy within {wait} s")

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        if self.proc.stdout and not self.proc.stdout.closed:
            self.log += self.proc.stdout.read()
        return rc

    def stop(self) -> None:
        """Terminate the process (SIGCONT first in case it was paused)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: the server dies without closing anything gracefully."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def restart(self) -> RealOpa:
        """Stop (if running) and start again on the same port with the same arguments."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, the server never answers.

        Returns once /proc shows the process stopped (signal delivery is asynchronous).
        """
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        stat = Path(f"/proc/{self.proc.pid}/stat")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if stat.read_text().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
            time.sleep(0.01)
        raise RuntimeError("opa did not stop after SIGSTOP")

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> RealOpa:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
