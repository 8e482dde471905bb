"""One Flower simulation through Flower's current runtime: a SuperLink of our own in simulation
mode, and ``flwr run`` of a Flower App written into the run folder.

``simulate(run_dir, settings, ...)``:

1. writes ``<run>/flower/app/pyproject.toml``: the components ``contrastkit.federated.apps``
   and ``[tool.flwr.app.config]`` holding every setting (scalars, Flower's run config);
2. starts ``flower-superlink --simulation`` on a free localhost port, its Flower home, state
   database and log inside the run folder, and ``$CONTRASTKIT_FL_RESULTS_DIR`` set to the run
   folder (where the ServerApp writes ``rounds_<algorithm>.json``);
3. submits the app with ``flwr run ... --stream``: the number of simulated parties and the Ray
   resources go in ``--federation-config``;
4. copies the stream to ``<run>/flower.log``, prints only the ServerApp's own lines (a header
   per algorithm and a line per round), and stops the SuperLink however the run ends.

Nothing is left running and nothing outside the run folder is written (no ``~/.flwr``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_DIR_ENV", "FlowerRunError", "simulate", "write_flower_app"]

RESULTS_DIR_ENV = "CONTRASTKIT_FL_RESULTS_DIR"  # where a ServerApp may write (federated.apps.results_path)


class FlowerRunError(RuntimeError):
    """The SuperLink or ``flwr run`` failed; the message names the log to read."""


_OURS = re.compile(r"^(== \w+: |\[\w+\] round )")  # the ServerApp's console lines
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are valid in it


def write_flower_app(folder: Path, settings: dict[str, Any]) -> Path:
    """A Flower App folder whose run config is ``settings`` (scalars only)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = "\n".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in settings.items())
    (folder / "pyproject.toml").write_text(
        "# Written by contrastkit federate: the run's settings as a Flower App.\n"
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "contrastkit-run"\nversion = "1.0.0"\ndescription = "a contrastkit federate run"\n'
        'license = "Apache-2.0"\ndependencies = []\n\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["."]\n\n'
        '[tool.flwr.app]\npublisher = "contrastkit"\n\n'
        '[tool.flwr.app.components]\nserverapp = "contrastkit.federated.apps:server_app"\n'
        'clientapp = "contrastkit.federated.apps:client_app"\n\n'
        f"[tool.flwr.app.config]\n{config}\n"
    )
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(port: int, link: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if link.poll() is not None:
            raise FlowerRunError(f"the Flower SuperLink exited with code {link.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise FlowerRunError(f"the Flower SuperLink did not answer within {timeout:.0f} s; see {log}")


def simulate(
    run_dir: Path, settings: dict[str, Any], num_parties: int, client_cpus: float, quiet: bool = False
) -> None:
    """Run ``settings`` (every algorithm of ``settings["algorithms"]``) as one Flower simulation of
    ``num_parties`` parties; raises FlowerRunError naming ``flower.log`` if Flower fails."""
    run_dir = run_dir.resolve()  # the SuperLink's subprocesses need no shared working directory
    flower, log_path = run_dir / "flower", run_dir / "flower.log"
    home = flower / "home"
    home.mkdir(parents=True, exist_ok=True)
    app = write_flower_app(flower / "app", settings)
    port = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "contrastkit"\n\n[superlink.contrastkit]\naddress = "127.0.0.1:{port}"\n'
        "insecure = true\n"
    )
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        RESULTS_DIR_ENV: str(run_dir),
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cpus = os.cpu_count() or 1
    federation = (
        f"num-supernodes={num_parties} client-resources-num-cpus={client_cpus:g} client-resources-num-gpus=0 "
        f"init-args-num-cpus={cpus} init-args-log-to-driver=false"
    )
    with open(log_path, "a") as log:
        link = subprocess.Popen(
            [
                str(bin_dir / "flower-superlink"),
                "--insecure",  # localhost only: the simulation's parties live inside this SuperLink
                "--simulation",
                "--isolation",
                "subprocess",
                "--disable-runtime-dependency-installation",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--database",
                str(flower / "state.db"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_up(port, link, log_path)
            run = subprocess.Popen(
                [str(bin_dir / "flwr"), "run", str(app), "contrastkit", "--stream", "--federation-config", federation],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert run.stdout is not None
            for line in run.stdout:
                log.write(line)
                clean = _ANSI.sub("", line).rstrip()
                if not quiet and _OURS.match(clean):
                    print(clean, flush=True)
            if run.wait() != 0:
                raise FlowerRunError(f"flwr run failed with code {run.returncode}; see {log_path}")
        finally:
            link.terminate()
            try:
                link.wait(timeout=30)
            except subprocess.TimeoutExpired:
                link.kill()
