"""A private single-node Slurm cluster on loopback for the slurm executor tests (Debian ``slurm-wlm`` + ``munge``).

Everything lives in one temporary folder: slurm.conf, a munge key served by its own ``munged`` on its own
socket (``AuthInfo=socket=...``), the controller state, the slurmd spool and the logs. slurmctld and slurmd
listen on free loopback ports, so a Slurm or munge already on the machine is neither used nor disturbed.
The node is this machine as ``slurmd -C`` reports it, renamed ``localhost``. slurmd starts job steps as any
user, so the cluster needs root; without root or the binaries the tests skip (fail where CI requires them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import free_port, stop_process, unavailable

SERVICE = "slurm-cluster"  # the TWIN_TEST_REQUIRE name .ci/run sets once it has installed slurm-wlm
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "munged")
PARTITION = "twin"
START_TIMEOUT = 60.0


@dataclass
class LocalSlurm:
    """The running cluster: its folder, and the environment clients need (``SLURM_CONF``)."""

    root: Path
    conf: Path
    binaries: dict[str, str]
    partition: str = PARTITION
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, command: str, *args: str) -> str:
        """Run a Slurm client against this cluster; raise with its output when it fails."""
        done = subprocess.run([self.binaries[command], *args], env=self.env, capture_output=True, text=True, timeout=30)
        if done.returncode:
            raise AssertionError(f"{command} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def jobs(self) -> list[str]:
        """Ids of the jobs squeue still lists (pending, running or completing)."""
        return self.run("squeue", "-h", "-o", "%i").split()

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (the controller keeps finished jobs for MinJobAge, 300 s)."""
        return dict(re.findall(r"(\w+)=(\S*)", self.run("scontrol", "-o", "show", "job", job_id)))

    def wait_until_no_jobs(self, timeout: float = 30.0) -> list[str]:
        """Poll squeue until cancelled jobs have left their node; returns what is left at the deadline."""
        deadline = time.monotonic() + timeout
        while (left := self.jobs()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def logs(self) -> str:
        """The log tails of the daemons and of the jobs, for failure messages."""
        parts = []
        for pattern in ("*.log", "*.out", "jobs/*.err", "jobs/*.out"):
            for path in sorted(self.root.glob(pattern)):
                lines = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def _binaries() -> dict[str, str]:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = {name: shutil.which(name, path=search) for name in BINARIES}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        unavailable(SERVICE, f"{', '.join(missing)} not found (Debian: apt-get install slurm-wlm munge)")
    return {name: str(path) for name, path in found.items()}


def _node_line(slurmd: str) -> str:
    """This machine's CPUs, sockets, cores and memory as slurmd detects them, as the node ``localhost``."""
    detected = subprocess.run([slurmd, "-C"], capture_output=True, text=True, check=True, timeout=30).stdout
    first = detected.splitlines()[0]
    return re.sub(r"^NodeName=\S+", "NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost", first)


def write_config(root: Path, binaries: dict[str, str]) -> Path:
    """slurm.conf for one node and one partition; no cgroups, no accounting, no MPI."""
    conf = root / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=twintest",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root / 'munge' / 'munge.socket'}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",  # cgroups are neither needed nor available in every container
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU",
        "MpiDefault=none",
        "ReturnToService=2",
        "MailProg=/bin/true",
        _node_line(binaries["slurmd"]),
        f"PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        "",
    ]))
    return conf


def _start(cluster: LocalSlurm, name: str, *args: str) -> None:
    out = (cluster.root / f"{name}.out").open("wb")
    cluster.processes.append(subprocess.Popen([cluster.binaries[name], *args], env=cluster.env, stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True))
    out.close()


def _wait_idle(cluster: LocalSlurm) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    state = ""
    while time.monotonic() < deadline:
        for process in cluster.processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.args!r} exited with {process.returncode}\n{cluster.logs()}")
        done = subprocess.run([cluster.binaries["sinfo"], "-h", "-N", "-n", "localhost", "-o", "%T"], env=cluster.env,
                              capture_output=True, text=True, timeout=30)
        state = done.stdout.strip()
        if done.returncode == 0 and state == "idle":
            return
        time.sleep(0.2)
    raise AssertionError(f"the Slurm node is not idle after {START_TIMEOUT:.0f} s (state {state!r})\n{cluster.logs()}")


def _stop(cluster: LocalSlurm) -> None:
    """Cancel what is left, then stop slurmd, slurmctld and munged (in that order)."""
    if cluster.processes and all(p.poll() is None for p in cluster.processes):
        try:
            left = cluster.jobs()
            if left:
                cluster.run("scancel", *left)
                cluster.wait_until_no_jobs()
        except (AssertionError, subprocess.TimeoutExpired):
            pass  # the daemons are stopped below all the same
    for process in reversed(cluster.processes):
        stop_process(process, timeout=15)


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    """Start munged, slurmctld and slurmd once per pytest run; ``SLURM_CONF`` points every client (and
    dask-jobqueue's sbatch) at them. Everything is stopped and the folder removed afterwards."""
    if os.geteuid() != 0:
        unavailable(SERVICE, "a private Slurm cluster needs root (slurmd runs job steps as their user)")
    binaries = _binaries()
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool", "jobs"):
        (root / sub).mkdir()
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    cluster = LocalSlurm(root=root, conf=root / "slurm.conf", binaries=binaries)
    munge = root / "munge"
    try:
        write_config(root, binaries)
        _start(cluster, "munged", "--foreground", "--force", f"--socket={munge / 'munge.socket'}",
               f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
               f"--seed-file={munge / 'munged.seed'}")
        deadline = time.monotonic() + START_TIMEOUT
        while not (munge / "munge.socket").exists():
            if cluster.processes[0].poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"munged did not create its socket\n{cluster.logs()}")
            time.sleep(0.1)
        _start(cluster, "slurmctld", "-D", "-c")  # -c: a clean controller state
        _start(cluster, "slurmd", "-D", "-N", "localhost")
        _wait_idle(cluster)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLURM_CONF", str(cluster.conf))
            yield cluster
    finally:
        _stop(cluster)
        shutil.rmtree(root, ignore_errors=True)
