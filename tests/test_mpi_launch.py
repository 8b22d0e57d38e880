"""docker/mpi_launch.py (MPI across containers or machines over ssh) and docker/mpi-host: host lists,
MPICH's hosts file, waiting for hosts, the job's key, the mpiexec command, and the compose profile
that wires them together. The two-container run itself is checked end to end by .ci/docker-check."""

import importlib.util
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mpi_launch", ROOT / "docker" / "mpi_launch.py")
mpi_launch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mpi_launch)
LaunchError = mpi_launch.LaunchError


def test_parse_hosts_gives_each_entry_its_ranks():
    assert mpi_launch.parse_hosts("node1, node2:4,10.0.0.7:16,", 2) == [("node1", 2), ("node2", 4), ("10.0.0.7", 16)]


@pytest.mark.parametrize("text", ["node1:0", "node1:x", ":3", "node1:-2", " , "])
def test_parse_hosts_refuses_bad_entries(text):
    with pytest.raises(LaunchError, match="--hosts"):
        mpi_launch.parse_hosts(text, 1)


def test_read_hostfile_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("# the cluster\nnode1:8\n\n  node2   # the second\n", encoding="utf-8")
    assert mpi_launch.read_hostfile(path, 3) == [("node1", 8), ("node2", 3)]
    with pytest.raises(LaunchError, match=re.escape(f"--hostfile {tmp_path / 'missing'}: cannot read it")):
        mpi_launch.read_hostfile(tmp_path / "missing", 1)


def test_expand_turns_a_scaled_service_into_its_addresses_in_numeric_order():
    table = {"mpi-host": ["10.0.0.10", "10.0.0.9", "10.0.0.10", "10.0.0.100"], "node1": ["192.168.1.5"], "later": []}
    hosts = mpi_launch.expand([("mpi-host", 2), ("node1", 4), ("later", 1)], lambda name: table[name])
    # 10.0.0.9 < 10.0.0.10 < 10.0.0.100 as numbers (not as text); duplicates once; one-address names as written
    assert hosts == [("10.0.0.9", 2), ("10.0.0.10", 2), ("10.0.0.100", 2), ("node1", 4), ("later", 1)]
    assert mpi_launch.hostfile_text(hosts) == "10.0.0.9:2\n10.0.0.10:2\n10.0.0.100:2\nnode1:4\nlater:1\n"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_for_hosts_waits_until_every_replica_is_up_and_answers():
    clock = FakeClock()

    def resolve(name):  # one replica first, the second from t=3 s
        return ["172.18.0.3"] + (["172.18.0.2"] if clock.now >= 3 else [])

    def accepts(host, port):  # the second's sshd answers from t=5 s
        assert port == 2222
        return host != "172.18.0.2" or clock.now >= 5

    hosts = mpi_launch.wait_for_hosts([("mpi-host", 1)], 2, 2222, 60, resolve=resolve, accepts=accepts, clock=clock, sleep=clock.sleep)
    assert hosts == [("172.18.0.2", 1), ("172.18.0.3", 1)]
    assert clock.now == 5


def test_wait_for_hosts_says_what_is_missing_after_the_timeout():
    clock = FakeClock()
    table = {"mpi-host": ["172.18.0.2"], "ghost": []}
    with pytest.raises(LaunchError) as caught:
        mpi_launch.wait_for_hosts(
            [("mpi-host", 1), ("ghost", 1)], 3, 2222, 10, resolve=lambda name: table[name], accepts=lambda host, port: False, clock=clock, sleep=clock.sleep
        )
    message = str(caught.value)
    assert message.startswith("after 10 s: expected 3 hosts, found 2 (mpi-host, ghost); no address for ghost; no ssh server answers on port 2222 of mpi-host.")
    assert "MPI_HOSTS" in message
    assert clock.now == 10


def test_mpiexec_command_counts_the_ranks_and_names_the_callback_address():
    hosts = [("10.0.0.2", 2), ("10.0.0.3", 3)]
    command = mpi_launch.mpiexec_command(
        "/opt/venv/bin/mpiexec", "/tmp/x/ssh", "/tmp/x/hosts", hosts, ["python", "-m", "scripts.train_controller"], localhost="10.0.0.9"
    )
    assert command == [
        "/opt/venv/bin/mpiexec", "-launcher", "ssh", "-launcher-exec", "/tmp/x/ssh", "-f", "/tmp/x/hosts",
        "-localhost", "10.0.0.9", "-n", "5", "python", "-m", "scripts.train_controller",
    ]  # fmt: skip
    with_iface = mpi_launch.mpiexec_command("mpiexec", "ssh", "hosts", hosts, ["true"], iface="ens5", localhost="10.0.0.9")
    assert with_iface[with_iface.index("-f") + 2 : with_iface.index("-n")] == ["-iface", "ens5"]


def test_accepts_only_an_ssh_server():
    def serve(greeting):
        server = socket.create_server(("127.0.0.1", 0))
        received = []

        def answer():
            connection, _ = server.accept()
            with connection:
                connection.sendall(greeting)
                received.append(connection.recv(256))
            server.close()

        thread = threading.Thread(target=answer)
        thread.start()
        return server.getsockname()[1], thread, received

    port, thread, received = serve(b"SSH-2.0-OpenSSH_9.2p1\r\n")
    assert mpi_launch.accepts("127.0.0.1", port)
    thread.join(5)
    assert received == [b"SSH-2.0-mpi_launch_probe\r\n"]  # it greets back, so sshd logs no aborted exchange
    port, thread, _ = serve(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert not mpi_launch.accepts("127.0.0.1", port)
    thread.join(5)
    closed = socket.create_server(("127.0.0.1", 0))
    free_port = closed.getsockname()[1]
    closed.close()
    assert not mpi_launch.accepts("127.0.0.1", free_port)


def test_own_address_is_the_source_address_toward_a_host():
    assert mpi_launch.own_address("127.0.0.1", 2222) == "127.0.0.1"


def test_ssh_config_uses_the_port_and_only_the_jobs_key(tmp_path):
    text = mpi_launch.ssh_config_text(2345, tmp_path / "id_ed25519")
    assert "Port 2345\n" in text and f"IdentityFile {tmp_path / 'id_ed25519'}\n" in text
    assert "IdentitiesOnly yes" in text and "BatchMode yes" in text


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (openssh-client)")
def test_ensure_key_makes_one_private_key_pair_once(tmp_path):
    key_dir = tmp_path / "runs" / ".mpi-ssh"
    key = mpi_launch.ensure_key(key_dir)
    assert key == key_dir / "id_ed25519"
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = key.with_suffix(".pub").read_text(encoding="utf-8")
    assert public.startswith("ssh-ed25519 ") and public.rstrip().endswith("world-models-mpi")
    private = key.read_bytes()
    assert mpi_launch.ensure_key(key_dir) == key  # a second launch reuses it
    assert key.read_bytes() == private and key.with_suffix(".pub").read_text(encoding="utf-8") == public
    assert sorted(path.name for path in key_dir.parent.iterdir()) == [".mpi-ssh"]  # no staging folder left


def test_ensure_key_refuses_a_folder_without_the_key_and_cleans_up_a_failed_keygen(tmp_path):
    key_dir = tmp_path / ".mpi-ssh"
    key_dir.mkdir()
    (key_dir / "id_ed25519").write_text("half a pair", encoding="utf-8")
    with pytest.raises(LaunchError, match=re.escape(f"{key_dir} exists without id_ed25519 and id_ed25519.pub: delete that folder")):
        mpi_launch.ensure_key(key_dir)
    assert (key_dir / "id_ed25519").read_text(encoding="utf-8") == "half a pair"  # left as it was

    fresh = tmp_path / "fresh" / ".mpi-ssh"
    with pytest.raises(LaunchError, match="false failed"):
        mpi_launch.ensure_key(fresh, keygen="false")
    assert not fresh.exists() and list(fresh.parent.iterdir()) == []


def test_parse_arguments_takes_the_command_after_the_separator():
    arguments = mpi_launch.parse_arguments(["--hosts", "mpi-host", "--expect", "2", "--", "python", "-m", "scripts.train_controller", "--force"])
    assert arguments.command == ["python", "-m", "scripts.train_controller", "--force"]
    assert (arguments.port, arguments.ranks_per_host, arguments.expect) == (2222, 1, 2)
    for bad in (["--hosts", "a"], ["--hosts", "a", "--ranks-per-host", "0", "--", "true"], ["--", "true"]):
        with pytest.raises(SystemExit) as caught:
            mpi_launch.parse_arguments(bad)
        assert caught.value.code == 2


def test_launch_runs_mpiexec_on_the_hosts_file_and_returns_its_status(tmp_path, monkeypatch):
    """Everything but ssh and MPI: a stand-in mpiexec records its arguments and hosts file."""
    record = tmp_path / "record"
    fake_mpiexec = tmp_path / "mpiexec"
    fake_mpiexec.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\nfor a; do [ -f "$a" ] && case "$a" in */hosts) cat "$a" >> {record};; esac; done\nexit 3\n'
    )
    fake_mpiexec.chmod(0o755)
    keys = []
    monkeypatch.setattr(mpi_launch, "find_mpiexec", lambda: str(fake_mpiexec))
    monkeypatch.setattr(mpi_launch, "ensure_key", lambda key_dir: keys.append(key_dir) or key_dir / "id_ed25519")
    monkeypatch.setattr(mpi_launch, "wait_for_hosts", lambda entries, expect, port, timeout: [("127.0.0.1", 2), ("localhost", 1)])
    monkeypatch.setattr(mpi_launch, "check_ssh", lambda wrapper, hosts: None)
    status = mpi_launch.main(["--hosts", "ignored", "--key-dir", str(tmp_path / "keys"), "--", "python", "-c", "pass"])
    assert status == 3
    assert keys == [tmp_path / "keys"]
    lines = record.read_text().splitlines()
    assert lines[:2] == ["-launcher", "ssh"]
    assert lines[lines.index("-localhost") + 1] == "127.0.0.1"
    assert lines[lines.index("-n") + 1 :] == ["3", "python", "-c", "pass", "127.0.0.1:2", "localhost:1"]


def test_main_reports_a_setup_error_in_one_line(tmp_path, capsys):
    status = mpi_launch.main(["--hostfile", str(tmp_path / "nope"), "--", "true"])
    assert status == 2
    assert (
        capsys.readouterr().err
        == f"mpi_launch: error: --hostfile {tmp_path / 'nope'}: cannot read it (No such file or directory); give a file of host[:ranks] lines\n"
    )


def test_mpi_host_refuses_a_bad_port_before_starting_anything():
    result = subprocess.run(["bash", str(ROOT / "docker" / "mpi-host"), "--port", "22x"], capture_output=True, text=True)
    assert result.returncode == 2 and "--port 22x: expected a port number" in result.stderr
    result = subprocess.run(["bash", str(ROOT / "docker" / "mpi-host"), "--verbose"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown argument --verbose" in result.stderr


def test_host_launcher_and_compose_agree_on_port_key_and_count():
    host_script = (ROOT / "docker" / "mpi-host").read_text(encoding="utf-8")
    assert f"port=${{MPI_SSH_PORT:-{mpi_launch.DEFAULT_PORT}}}" in host_script
    assert f"key_dir=${{MPI_SSH_DIR:-{mpi_launch.DEFAULT_KEY_DIR}}}" in host_script
    assert f"AuthorizedKeysFile $key_dir/{mpi_launch.KEY_NAME}.pub" in host_script
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    mpi_host = compose[compose.index("\n  mpi-host:") :]
    assert "replicas: ${MPI_HOSTS:-2}" in mpi_host.split("\n\n")[0]
    launcher = compose[compose.index("\n  mpi-train-controller:") :].split("\n\n")[0]
    assert "docker/mpi_launch.py --hosts mpi-host --expect ${MPI_HOSTS:-2}" in launcher
    assert "scripts.train_controller" in launcher
    assert os.access(ROOT / "docker" / "mpi-host", os.X_OK)
