"""One SUMO process and the TraCI connection that drives it.

Each :class:`SumoSimulation` starts its own ``sumo`` (or ``sumo-gui``) process on a free port and holds a
private :class:`traci.Connection` to it (``traci.connect``, outside TraCI's global label pool), so any
number of simulations run side by side in one process or in subprocesses. :meth:`SumoSimulation.close`
ends the process; a simulation that is garbage-collected or still open at interpreter exit has its
process killed, so none is leaked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from typing import IO

try:
    import traci
    from sumolib.miscutils import getFreeSocketPort
    from traci.exceptions import FatalTraCIError, TraCIException
except ModuleNotFoundError as err:  # pragma: no cover - depends on the installation
    raise ModuleNotFoundError(
        "app_zoo.sumo needs the TraCI client: pip install -e '.[sumo]' (traci==1.15.0, sumolib==1.15.0), "
        "and the SUMO 1.15 binaries: apt-get install -y --no-install-recommends sumo"
    ) from err

INSTALL_HINT = "install SUMO 1.15: apt-get install -y --no-install-recommends sumo"
CONNECT_TIMEOUT_S = 30.0
START_ATTEMPTS = 3  # a free port can be taken by another process before SUMO binds it: retry on a new one


def sumo_binary(gui: bool = False) -> str:
    """Path of ``sumo`` (``sumo-gui`` when ``gui``) on ``PATH``; a clear error when SUMO is missing."""
    name = "sumo-gui" if gui else "sumo"
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"the SUMO binary '{name}' is not on PATH; {INSTALL_HINT}")
    return path


def sumo_unavailable_reason() -> str | None:
    """Why SUMO cannot run here (for skipping tests), or ``None`` when it can."""
    try:
        sumo_binary()
    except FileNotFoundError as err:
        return str(err)
    return None


class SumoSimulation:
    """A running SUMO simulation: ``conn`` is its TraCI connection.

    Args:
        args: SUMO command-line options (network, routes, seed, ...); ``--remote-port`` is added here.
        gui: run ``sumo-gui`` instead of ``sumo``.
    """

    def __init__(self, args: Sequence[str], gui: bool = False) -> None:
        binary = sumo_binary(gui)
        for attempt in range(START_ATTEMPTS):
            # SUMO's messages, shown when it fails (a pipe could fill up); closed by _terminate
            log = tempfile.TemporaryFile()  # noqa: SIM115
            port = getFreeSocketPort()
            process = subprocess.Popen(
                [binary, *args, "--remote-port", str(port)], stdout=subprocess.DEVNULL, stderr=log
            )
            self._finalizer = weakref.finalize(self, _terminate, process, log, os.getpid())
            try:
                self.conn: traci.Connection = _connect(port, process)
                self.conn.getVersion()  # answered once SUMO has loaded its inputs
            except (TraCIException, FatalTraCIError):  # SUMO exited: bad inputs, or the port was taken
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
                message = _read(log)
                self._finalizer()
                if "already in use" in message and attempt < START_ATTEMPTS - 1:
                    continue
                raise RuntimeError(f"SUMO failed to start ({' '.join(args)}):\n{message}") from None
            except BaseException:  # a timeout, an interrupt: no process is left behind
                self._finalizer()
                raise
            self.process = process
            return

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """End the simulation and its process (idempotent)."""
        if self.closed:
            return
        with contextlib.suppress(FatalTraCIError, OSError, subprocess.TimeoutExpired):  # gone, or hanging
            self.conn.close(wait=False)
            self.process.wait(timeout=5)  # after TraCI's close command SUMO exits by itself
        self._finalizer()  # kills it if it is still there


def _connect(port: int, process: subprocess.Popen) -> traci.Connection:
    """Connect to SUMO as soon as it listens (``traci.connect``'s own retries sleep a second each)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            return traci.connect(port, numRetries=0, proc=process)
        except FatalTraCIError:  # not listening yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"SUMO did not accept a TraCI connection on port {port}") from None
            time.sleep(0.005)


def _terminate(process: subprocess.Popen, log: IO[bytes], owner_pid: int) -> None:
    """Kill ``process`` if it still runs, reap it and drop its log; only in the process that started it
    (a forked child holding a copy of the simulation must not end its parent's SUMO)."""
    if os.getpid() != owner_pid:
        return
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


def _read(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace").strip()
