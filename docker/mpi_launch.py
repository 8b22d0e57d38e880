"""Start an MPI job across machines or containers that run docker/mpi-host (an ssh server).

  python docker/mpi_launch.py --hosts mpi-host --expect 4 -- python -m scripts.train_controller --run-dir runs/doom
  python docker/mpi_launch.py --hosts 10.0.0.11:8,10.0.0.12:8 --iface ens5 -- python -m scripts.train_controller ...

Steps: make the job's ssh key in the shared run folder if it is missing (the hosts' ssh servers
accept exactly that key); wait until every host answers ssh; write MPICH's hosts file
(`host:ranks`, one line a host); run `mpiexec -launcher ssh -f hosts -n TOTAL COMMAND` and
return its exit status. MPICH's launcher starts one proxy a host over ssh; the proxies start the
ranks and call back to this mpiexec, so this process needs no rank of its own.

A --hosts entry is a name or address, optionally with `:ranks`. A name that resolves to several
addresses (a compose service scaled to N containers) stands for all of them, in address order.
Python's standard library only: it runs in the image and on a plain install alike.
"""

import argparse
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY_NAME = "id_ed25519"
DEFAULT_PORT = 2222
DEFAULT_KEY_DIR = "/app/runs/.mpi-ssh"


class LaunchError(RuntimeError):
    """A setup problem, reported as one line with the fix (exit status 2)."""


def parse_hosts(text: str, ranks_per_host: int) -> list[tuple[str, int]]:
    """'a,b:4' -> [('a', ranks_per_host), ('b', 4)]."""
    entries = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, count = item.rpartition(":") if ":" in item else (item, "", "")
        if not count:
            name, ranks = item, ranks_per_host
        elif count.isdigit() and int(count) > 0 and name:
            ranks = int(count)
        else:
            raise LaunchError(f"--hosts entry {item!r}: expected NAME or NAME:RANKS with RANKS a positive whole number, e.g. node1:8")
        entries.append((name, ranks))
    if not entries:
        raise LaunchError(f"--hosts {text!r}: no host given; name at least one, e.g. --hosts mpi-host or --hosts node1:8,node2:8")
    return entries


def read_hostfile(path: Path, ranks_per_host: int) -> list[tuple[str, int]]:
    """MPICH's hosts file format (`host[:ranks]` a line, # comments) read into entries."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise LaunchError(f"--hostfile {path}: cannot read it ({error.strerror}); give a file of host[:ranks] lines") from error
    names = [line.split("#", 1)[0].strip() for line in lines]
    return parse_hosts(",".join(name for name in names if name), ranks_per_host)


def address_order(address: str) -> tuple:
    parsed = ipaddress.ip_address(address)
    return (parsed.version, int(parsed))


def expand(entries: list[tuple[str, int]], resolve) -> list[tuple[str, int]]:
    """Each entry as MPICH's hosts file will name it: a name that resolves to one address stays as
    written; a name that resolves to several (a scaled compose service) becomes its addresses in
    order, each with the entry's ranks. resolve(name) -> list of addresses; [] if unknown yet."""
    hosts = []
    for name, ranks in entries:
        addresses = sorted(set(resolve(name)), key=address_order)
        if len(addresses) > 1:
            hosts.extend((address, ranks) for address in addresses)
        else:
            hosts.append((name, ranks))
    return hosts


def resolve_ipv4(name: str) -> list[str]:
    try:
        return [info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)]
    except socket.gaierror:
        return []


def hostfile_text(hosts: list[tuple[str, int]]) -> str:
    return "".join(f"{host}:{ranks}\n" for host, ranks in hosts)


def ssh_config_text(port: int, key: Path) -> str:
    # The hosts' keys are made afresh at each start on a private network: not checked, not stored.
    return (
        "Host *\n"
        f"    Port {port}\n"
        f"    IdentityFile {key}\n"
        "    IdentitiesOnly yes\n"
        "    BatchMode yes\n"
        "    StrictHostKeyChecking no\n"
        "    UserKnownHostsFile /dev/null\n"
        "    LogLevel ERROR\n"
        "    ConnectTimeout 10\n"
    )


def ensure_key(key_dir: Path, keygen: str = "ssh-keygen") -> Path:
    """The job's private key KEY_DIR/id_ed25519 (and .pub), made once: in a temporary folder
    renamed into place, so hosts and a second launcher never see half a key pair."""
    key = key_dir / KEY_NAME
    if key.is_file() and key.with_suffix(".pub").is_file():
        return key
    if key_dir.exists():
        raise LaunchError(f"{key_dir} exists without {KEY_NAME} and {KEY_NAME}.pub: delete that folder and rerun (a new key is made)")
    key_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mpi-ssh.", dir=key_dir.parent))
    try:
        result = subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "world-models-mpi", "-f", str(staging / KEY_NAME)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise LaunchError(f"{keygen} failed (status {result.returncode}): {result.stderr.strip()}")
        os.chmod(staging, 0o700)
        try:
            os.rename(staging, key_dir)
        except OSError:
            if not key.is_file():  # not another launcher's finished key: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return key


def accepts(host: str, port: int, timeout: float = 2.0) -> bool:
    """An ssh server answers on host:port: it greets with its SSH- banner. Our own greeting
    before closing keeps the server's log free of an aborted key exchange."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            banner = connection.recv(256)
            if banner.startswith(b"SSH-"):
                connection.sendall(b"SSH-2.0-mpi_launch_probe\r\n")
                return True
            return False
    except OSError:
        return False


def wait_for_hosts(entries, expect, port, timeout, resolve=resolve_ipv4, accepts=accepts, clock=time.monotonic, sleep=time.sleep):
    """The expanded hosts once there are `expect` of them (if given) and an ssh server answers on
    each one's port; LaunchError naming what is missing after `timeout` seconds."""
    deadline = clock() + timeout
    while True:
        hosts = expand(entries, resolve)
        unknown = [name for name, _ in hosts if not resolve(name)]
        silent = [name for name, _ in hosts if name not in unknown and not accepts(name, port)]
        count_ok = expect is None or len(hosts) == expect
        if count_ok and not unknown and not silent:
            return hosts
        if clock() >= deadline:
            found = ", ".join(name for name, _ in hosts)
            problems = []
            if not count_ok:
                problems.append(f"expected {expect} hosts, found {len(hosts)} ({found})")
            if unknown:
                problems.append(f"no address for {', '.join(unknown)}")
            if silent:
                problems.append(f"no ssh server answers on port {port} of {', '.join(silent)}")
            raise LaunchError(
                f"after {timeout:g} s: {'; '.join(problems)}. Start the hosts first (`docker compose up -d mpi-host` with MPI_HOSTS "
                f"set, or `docker/mpi-host` on each machine), and give the launcher the same count and port"
            )
        sleep(1.0)


def own_address(toward: str, port: int) -> str:
    """This machine's address on the route to `toward` (no packet is sent): what the hosts' MPI
    proxies call back, whatever this container's hostname is."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((toward, port))
        return probe.getsockname()[0]


def mpiexec_command(mpiexec, ssh_wrapper, hostfile, hosts, command, iface=None, localhost=None) -> list[str]:
    total = sum(ranks for _, ranks in hosts)
    where = ["-iface", iface] if iface else ["-localhost", localhost] if localhost else []
    return [mpiexec, "-launcher", "ssh", "-launcher-exec", str(ssh_wrapper), "-f", str(hostfile), *where, "-n", str(total), *command]


def find_mpiexec() -> str:
    """mpiexec beside this interpreter (the PyPI mpich package in the venv), else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if not found:
        raise LaunchError("mpiexec not found: run this with the project's Python (`pip install -r requirements.txt` installs mpich)")
    return found


def check_ssh(ssh_wrapper: Path, hosts) -> None:
    """One `ssh HOST true` a host: a refused key names its host here, not deep in mpiexec's output."""
    for host, _ in hosts:
        result = subprocess.run([str(ssh_wrapper), host, "true"], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise LaunchError(
                f"ssh to {host} failed (status {result.returncode}): {result.stderr.strip() or 'no message'}. The host's "
                "docker/mpi-host must see the same run folder (the key is in its .mpi-ssh/) and run as the same user"
            )


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--hosts", help="comma-separated host[:ranks]; a name with several addresses stands for all of them")
    where.add_argument("--hostfile", type=Path, help="a file of host[:ranks] lines (MPICH's hosts file)")
    parser.add_argument("--ranks-per-host", type=int, default=1, help="ranks on a host whose entry gives none (default 1)")
    parser.add_argument("--expect", type=int, help="wait for exactly this many hosts (a scaled compose service)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the hosts' ssh port (default {DEFAULT_PORT})")
    parser.add_argument("--key-dir", type=Path, default=Path(DEFAULT_KEY_DIR), help=f"the shared folder of the job's ssh key (default {DEFAULT_KEY_DIR})")
    parser.add_argument("--iface", help="network interface the MPI traffic takes (needed on machines with several, e.g. ens5)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the hosts (default 120)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command every rank runs")
    arguments = parser.parse_args(argv)
    if arguments.command[:1] == ["--"]:
        arguments.command = arguments.command[1:]
    if not arguments.command:
        parser.error("no command: end with -- python -m scripts.train_controller --run-dir ...")
    if arguments.ranks_per_host < 1:
        parser.error(f"--ranks-per-host {arguments.ranks_per_host}: expected at least 1")
    if arguments.expect is not None and arguments.expect < 1:
        parser.error(f"--expect {arguments.expect}: expected at least 1")
    return arguments


def launch(arguments) -> int:
    entries = read_hostfile(arguments.hostfile, arguments.ranks_per_host) if arguments.hostfile else parse_hosts(arguments.hosts, arguments.ranks_per_host)
    mpiexec = find_mpiexec()
    key = ensure_key(arguments.key_dir)
    hosts = wait_for_hosts(entries, arguments.expect, arguments.port, arguments.timeout)
    with tempfile.TemporaryDirectory(prefix="mpi-launch.") as folder:
        folder = Path(folder)
        (folder / "ssh_config").write_text(ssh_config_text(arguments.port, key), encoding="utf-8")
        ssh_wrapper = folder / "ssh"
        ssh_wrapper.write_text(f'#!/bin/sh\nexec ssh -F {folder / "ssh_config"} "$@"\n', encoding="utf-8")
        ssh_wrapper.chmod(0o755)
        hostfile = folder / "hosts"
        hostfile.write_text(hostfile_text(hosts), encoding="utf-8")
        check_ssh(ssh_wrapper, hosts)
        localhost = None if arguments.iface else own_address(hosts[0][0], arguments.port)
        if arguments.iface:
            os.environ.setdefault("UCX_NET_DEVICES", arguments.iface)  # the ranks' traffic too (mpiexec passes its environment on)
        command = mpiexec_command(mpiexec, ssh_wrapper, hostfile, hosts, arguments.command, arguments.iface, localhost)
        print(f"mpi_launch: {sum(ranks for _, ranks in hosts)} ranks on {len(hosts)} hosts: {', '.join(f'{h}:{r}' for h, r in hosts)}", flush=True)
        process = subprocess.Popen(command)
        for signum in (signal.SIGINT, signal.SIGTERM):  # a stop reaches mpiexec, which ends every rank
            signal.signal(signum, lambda number, frame: process.send_signal(number))
        return process.wait()


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    try:
        return launch(arguments)
    except LaunchError as error:
        print(f"mpi_launch: error: {error}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
