"""The same Flower apps deployed as real processes: one SuperLink and two SuperNodes on localhost,
once as the labelled insecure demo and once as docs/federated.md leads with it: TLS with generated
certificates and SuperNode authentication (only registered public keys may connect)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from contrastkit.federated.apps import RESULTS_DIR_ENV

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    template = resources.files("contrastkit.federated") / "flower_app" / "pyproject.toml"
    text = Path(str(template)).read_text().replace('results-file = ""', 'results-file = "results.json"')
    (app / "pyproject.toml").write_text(text.replace("rounds = 3", "rounds = 2"))
    return app


def _submit(app: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``flwr run`` of the app on the "local" federation of ``$FLWR_HOME/config.toml``."""
    return subprocess.run(
        [str(BIN / "flwr"), "run", str(app), "local", "--stream"], env=env, capture_output=True, text=True, timeout=900
    )


def _wait_for_rounds(results: Path, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    deadline = time.time() + 300
    while time.time() < deadline and not (results.exists() and len(json.loads(results.read_text())) == 3):
        time.sleep(2)
    assert results.exists(), done.stdout[-3000:]
    history = json.loads(results.read_text())
    assert [r["round"] for r in history] == [0, 1, 2]
    assert all(len(r["ok"]) == 2 for r in history[1:])


def _stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        p.terminate()
    for p in processes:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def test_superlink_and_two_supernodes_run_moon(tmp_path):
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr"), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    (tmp_path / "flwr").mkdir()
    (tmp_path / "flwr" / "config.toml").write_text(
        '[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:8000"\ninsecure = true\n'
    )
    app = _app(tmp_path)
    results = tmp_path / "results" / "results.json"
    env[RESULTS_DIR_ENV] = str(tmp_path / "results")
    processes = [
        _start(
            [
                str(BIN / "flower-superlink"),
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--database",
                str(tmp_path / "link.db"),
            ],
            env,
            tmp_path / "superlink.log",
        )
    ]
    try:
        time.sleep(5)
        for pid in range(2):
            processes.append(
                _start(
                    [
                        str(BIN / "flower-supernode"),
                        "--insecure",
                        "--superlink",
                        "127.0.0.1:8000",
                        "--port",
                        str(9094 + pid),
                        "--node-config",
                        f"partition-id={pid} num-partitions=2",
                    ],
                    env,
                    tmp_path / f"supernode{pid}.log",
                )
            )
        time.sleep(5)
        done = _submit(app, env)
        _wait_for_rounds(results, done)
    finally:
        _stop(processes)
        shutil.rmtree(tmp_path / "flwr", ignore_errors=True)


def _certificates(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 / localhost, signed by it (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir()
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "contrastkit test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _node_key(folder: Path, name: str) -> Path:
    """An EC key pair in OpenSSH format, as SuperNode authentication expects; returns the private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    private = folder / name
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    (folder / f"{name}.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    return private


def test_tls_and_supernode_authentication(tmp_path):
    certs = tmp_path / "certs"
    _certificates(certs)
    keys = [_node_key(certs, f"node{i}") for i in range(3)]
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr"), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env[RESULTS_DIR_ENV] = str(tmp_path / "results")
    (tmp_path / "flwr").mkdir()
    (tmp_path / "flwr" / "config.toml").write_text(
        '[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:8000"\n'
        f'root-certificates = "{certs / "ca.crt"}"\n'
    )
    app = _app(tmp_path)
    link = [
        str(BIN / "flower-superlink"),
        "--ssl-ca-certfile",
        str(certs / "ca.crt"),
        "--ssl-certfile",
        str(certs / "server.pem"),
        "--ssl-keyfile",
        str(certs / "server.key"),
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",
        "--database",
        str(tmp_path / "link.db"),
    ]
    processes = [_start(link, env, tmp_path / "superlink.log")]
    try:
        time.sleep(5)
        for key in keys[:2]:  # register two of the three nodes
            registered = subprocess.run(
                [str(BIN / "flwr"), "supernode", "register", f"{key}.pub", "local"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert registered.returncode == 0, registered.stdout[-2000:] + registered.stderr[-2000:]
        for pid, key in enumerate(keys):
            node = [
                str(BIN / "flower-supernode"),
                "--superlink",
                "127.0.0.1:8000",
                "--root-certificates",
                str(certs / "ca.crt"),
                "--auth-supernode-private-key",
                str(key),
                "--port",
                str(9094 + pid),
                "--node-config",
                f"partition-id={min(pid, 1)} num-partitions=2",
            ]
            processes.append(_start(node, env, tmp_path / f"supernode{pid}.log"))
        time.sleep(5)
        done = _submit(app, env)
        _wait_for_rounds(tmp_path / "results" / "results.json", done)
        refused = processes[3]  # the third SuperNode, whose key was never registered
        assert refused.poll() not in (None, 0)
        assert "Failed to activate SuperNode" in (tmp_path / "supernode2.log").read_text()
        history = json.loads((tmp_path / "results" / "results.json").read_text())
        assert all(len(r["ok"]) == 2 for r in history[1:])  # the unregistered node took no part
    finally:
        _stop(processes)
        shutil.rmtree(tmp_path / "flwr", ignore_errors=True)
