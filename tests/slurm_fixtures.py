"""A private single-node Slurm cluster on loopback for the slurm executor tests (Debian ``slurm-wlm`` + ``munge``).

Everything lives in one temporary folder: slurm.conf, a munge key served by its own ``munged`` on its own
socket (``AuthInfo=socket=...``), the controller state, the slurmd spool and the logs. slurmctld and slurmd
listen on free loopback ports, so a Slurm or munge already on the machine is neither used nor disturbed.
The node is this machine as ``slurmd -C`` reports it, renamed ``localhost``. slurmd starts job steps as any
user, so the cluster needs root; without root or the binaries the tests skip (fail where CI requires them).

Where ``slurmdbd`` is installed and a MariaDB (or MySQL) server answers on loopback as root without a password,
the cluster keeps accounts: slurmdbd stores the jobs in a database of its own on that server (dropped at the
end), jobs are sampled every second (``jobacct_gather/linux``) and ``sacct`` answers. Tests of what sacct says
take ``slurm_accounting``, which skips with the reason where the cluster has none.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import free_port, stop_process, unavailable

SERVICE = "slurm-cluster"  # the TWIN_TEST_REQUIRE name .ci/run sets once it has installed slurm-wlm
ACCOUNTING = "slurm-accounting"  # ... and once slurmdbd is installed and MariaDB answers
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "munged")
ACCOUNTING_BINARIES = ("slurmdbd", "sacct", "sacctmgr")
MARIADB = ("127.0.0.1", 3306)
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
    accounting: str | None = None  # slurmdbd's database, where the cluster keeps accounts
    no_accounting: str = ""  # why it keeps none

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

    def sacct(self, job_id: str, timeout: float = 30.0) -> dict[str, str]:
        """The job's record in ``sacct`` once it has ended and its steps' CPU is in: the allocation's
        ``State``, ``CPUTimeRAW`` (allocated core-seconds) and ``ElapsedRaw``, with ``TotalCPU`` (seconds) summed
        over its steps (a cancelled job's allocation line carries none of its own)."""
        fields = ("JobID", "State", "TotalCPU", "CPUTimeRAW", "ElapsedRaw", "AllocCPUS")
        deadline = time.monotonic() + timeout
        rows: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            out = self.run("sacct", "-a", "-n", "-P", "-j", job_id, "-o", ",".join(fields))
            rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line.strip()]
            job = next((r for r in rows if r["JobID"] == job_id), None)
            steps = [r for r in rows if r["JobID"].startswith(f"{job_id}.")]
            if job is not None and job["State"].split()[0] not in ("PENDING", "RUNNING", "REQUEUED", "SUSPENDED"):
                total = sum(cpu_seconds(r["TotalCPU"]) for r in steps) if steps else cpu_seconds(job["TotalCPU"])
                if total > 0:
                    return {**job, "TotalCPU": str(total)}
            time.sleep(0.5)
        raise AssertionError(f"sacct has no ended job {job_id} with its CPU after {timeout:.0f} s: {rows}")

    def logs(self) -> str:
        """The log tails of the daemons and of the jobs, for failure messages."""
        parts = []
        for pattern in ("*.log", "*.out", "jobs/*.err", "jobs/*.out"):
            for path in sorted(self.root.glob(pattern)):
                lines = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def cpu_seconds(text: str) -> float:
    """``sacct``'s CPU times: ``[D-][HH:]MM:SS[.mmm]``."""
    days, _, clock = text.rpartition("-")
    parts = [float(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    return (int(days) if days else 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def which_sbin(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def _binaries() -> dict[str, str]:
    found = {name: which_sbin(name) for name in BINARIES}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        unavailable(SERVICE, f"{', '.join(missing)} not found (Debian: apt-get install slurm-wlm munge)")
    return {name: str(path) for name, path in found.items()}


def _node_line(slurmd: str) -> str:
    """This machine's CPUs, sockets, cores and memory as slurmd detects them, as the node ``localhost``."""
    detected = subprocess.run([slurmd, "-C"], capture_output=True, text=True, check=True, timeout=30).stdout
    first = detected.splitlines()[0]
    return re.sub(r"^NodeName=\S+", "NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost", first)


def _accounting_problem() -> str | None:
    """Why this machine cannot keep the cluster's accounts, or None."""
    missing = [name for name in ACCOUNTING_BINARIES if which_sbin(name) is None]
    if missing:
        return f"{', '.join(missing)} not found (Debian: apt-get install slurmdbd)"
    client = which_sbin("mariadb") or which_sbin("mysql")
    if client is None:
        return "no MariaDB or MySQL client (Debian: apt-get install mariadb-server)"
    probe = subprocess.run([client, "-uroot", f"-h{MARIADB[0]}", f"-P{MARIADB[1]}", "-e", "select 1"],
                           capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode:
        return f"MariaDB does not answer on {MARIADB[0]}:{MARIADB[1]} as root: {probe.stderr.strip()[-200:]}"
    return None


def _mariadb(sql: str) -> None:
    client = which_sbin("mariadb") or which_sbin("mysql")
    if client is not None:
        subprocess.run([client, "-uroot", f"-h{MARIADB[0]}", f"-P{MARIADB[1]}", "-e", sql], capture_output=True,
                       timeout=60, check=False)


def write_dbd_config(root: Path, database: str) -> int:
    """slurmdbd.conf beside slurm.conf (where slurmdbd looks for it), readable by its user only; its port."""
    port = free_port()
    conf = root / "slurmdbd.conf"
    conf.write_text("\n".join([
        "AuthType=auth/munge",
        f"AuthInfo=socket={root / 'munge' / 'munge.socket'}",
        "DbdHost=localhost",
        "DbdAddr=127.0.0.1",
        f"DbdPort={port}",
        "SlurmUser=root",
        "StorageType=accounting_storage/mysql",
        f"StorageHost={MARIADB[0]}",
        f"StoragePort={MARIADB[1]}",
        "StorageUser=root",
        f"StorageLoc={database}",
        f"PidFile={root / 'slurmdbd.pid'}",
        f"LogFile={root / 'slurmdbd.log'}",
        "",
    ]))
    conf.chmod(0o600)
    return port


def write_config(root: Path, binaries: dict[str, str], dbd_port: int | None = None) -> Path:
    """slurm.conf for one node and one partition; no cgroups, no MPI; accounts kept by slurmdbd on
    ``dbd_port`` (the clients reach it through the cluster's own munged), or none."""
    accounting = [
        "JobAcctGatherType=jobacct_gather/linux",
        "JobAcctGatherFrequency=task=1",
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=localhost",
        f"AccountingStoragePort={dbd_port}",
        f"AccountingStoragePass={root / 'munge' / 'munge.socket'}",
    ] if dbd_port is not None else ["JobAcctGatherType=jobacct_gather/none",
                                    "AccountingStorageType=accounting_storage/none"]
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
        *accounting,
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
    if cluster.accounting:
        _mariadb(f"DROP DATABASE IF EXISTS `{cluster.accounting}`")


def _start_accounting(cluster: LocalSlurm) -> None:
    """slurmdbd, answering before the controller starts; the cluster registered in it."""
    _start(cluster, "slurmdbd", "-D")
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if cluster.processes[-1].poll() is not None:
            raise AssertionError(f"slurmdbd exited with {cluster.processes[-1].returncode}\n{cluster.logs()}")
        done = subprocess.run([cluster.binaries["sacctmgr"], "-i", "add", "cluster", "twintest"], env=cluster.env,
                              capture_output=True, text=True, timeout=30)
        if done.returncode == 0 or "already exists" in done.stdout + done.stderr:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"slurmdbd does not answer sacctmgr: {done.stderr.strip()}\n{cluster.logs()}")
        time.sleep(0.3)


@contextmanager
def private_slurm(root: Path, binaries: dict[str, str]) -> Iterator[LocalSlurm]:
    """munged, slurmdbd (where it can keep accounts), slurmctld and slurmd in ``root`` (an empty folder),
    until the block ends; ``SLURM_CONF`` points every client (and dask-jobqueue's sbatch) at them meanwhile."""
    for sub in ("munge", "state", "spool", "jobs"):
        (root / sub).mkdir()
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    cluster = LocalSlurm(root=root, conf=root / "slurm.conf", binaries=binaries)
    munge = root / "munge"
    problem = _accounting_problem()
    try:
        dbd_port = None
        if problem is None:
            cluster.binaries.update({name: str(which_sbin(name)) for name in ACCOUNTING_BINARIES})
            cluster.accounting = f"twin_slurm_{os.getpid()}_{os.urandom(3).hex()}"
            dbd_port = write_dbd_config(root, cluster.accounting)
        else:
            cluster.no_accounting = problem
        write_config(root, binaries, dbd_port)
        _start(cluster, "munged", "--foreground", "--force", f"--socket={munge / 'munge.socket'}",
               f"--key-file={key}", f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
               f"--seed-file={munge / 'munged.seed'}")
        deadline = time.monotonic() + START_TIMEOUT
        while not (munge / "munge.socket").exists():
            if cluster.processes[0].poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"munged did not create its socket\n{cluster.logs()}")
            time.sleep(0.1)
        if cluster.accounting:
            _start_accounting(cluster)
        _start(cluster, "slurmctld", "-D", "-c")  # -c: a clean controller state
        _start(cluster, "slurmd", "-D", "-N", "localhost")
        _wait_idle(cluster)
        before = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            yield cluster
        finally:
            if before is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = before
    finally:
        _stop(cluster)


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSlurm]:
    """One private cluster per pytest run; stopped and its folder removed afterwards."""
    if os.geteuid() != 0:
        unavailable(SERVICE, "a private Slurm cluster needs root (slurmd runs job steps as their user)")
    binaries = _binaries()
    root = tmp_path_factory.mktemp("slurm")
    try:
        with private_slurm(root, binaries) as cluster:
            yield cluster
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class SacctComparison:
    """The engine's charge for work on one Slurm worker job beside the job's record in ``sacct``."""

    charged: float  # core-seconds the engine charged (the task stream's compute intervals)
    tasks_cpu: float  # the CPU the tasks measured themselves (thread time)
    job: str
    job_cpu: float  # sacct TotalCPU of the job
    allocated: float  # sacct CPUTimeRAW: the job's allocated core-seconds
    idle_cpu: float  # sacct TotalCPU of the same worker job left idle as long

    @property
    def work_cpu(self) -> float:
        """What the work took by Slurm's record: the job's CPU less the worker's own."""
        return self.job_cpu - self.idle_cpu

    def __str__(self) -> str:
        return (f"engine {self.charged:.2f} core-s; tasks' own CPU {self.tasks_cpu:.2f} s; sacct: job {self.job} "
                f"TotalCPU {self.job_cpu:.2f} s, allocated {self.allocated:.0f} core-s, the idle job's TotalCPU "
                f"{self.idle_cpu:.2f} s, so the work took {self.work_cpu:.2f} s")


def _worker_job(executor: Any, cluster: LocalSlurm) -> str:
    try:
        executor.client.wait_for_workers(1, timeout=60)
    except TimeoutError as exc:
        raise AssertionError(f"no worker joined; squeue lists {cluster.jobs()}\n{cluster.logs()}") from exc
    [job] = executor.client.run(os.getenv, "SLURM_JOB_ID").values()
    return str(job)


def compare_with_sacct(cluster: LocalSlurm, options: dict[str, Any], *, tasks: int, iterations: int
                       ) -> SacctComparison:
    """``tasks`` CPU-bound tasks on one worker job of the slurm executor (``options``: one job of one core),
    metered as the engine meters a run; then the same job left idle for as long, for what a worker costs
    doing nothing (its start, heartbeats and stop). Needs the cluster's accounts."""
    import dask

    from twinengine.compute.metering import start_meter
    from twinengine.workflows.executors import SlurmExecutor

    def burn(iterations: int) -> float:  # a local function: Dask sends it by value (the job cannot import tests)
        import hashlib
        import time

        started = time.thread_time()
        hashlib.pbkdf2_hmac("sha256", b"twin", b"salt", iterations)
        return time.thread_time() - started

    executor = SlurmExecutor(options)
    try:
        job = _worker_job(executor, cluster)
        joined = time.monotonic()
        meter = start_meter()
        spent = executor.compute(*[dask.delayed(burn, pure=False)(iterations) for _ in range(tasks)])
        charged = meter.stop().remote_core_seconds
        lived = time.monotonic() - joined
    finally:
        executor.close()
    worked = cluster.sacct(job)
    idle = SlurmExecutor(options)
    try:
        idle_job = _worker_job(idle, cluster)
        time.sleep(lived)  # as long as the working job lived once its worker had joined
    finally:
        idle.close()
    return SacctComparison(charged=charged, tasks_cpu=float(sum(spent)), job=job, job_cpu=float(worked["TotalCPU"]),
                           allocated=float(worked["CPUTimeRAW"]), idle_cpu=float(cluster.sacct(idle_job)["TotalCPU"]))


@pytest.fixture
def slurm_accounting(local_slurm: LocalSlurm) -> LocalSlurm:
    """The cluster, where it keeps accounts (``sacct`` answers); skips with the reason where it keeps none."""
    if not local_slurm.accounting:
        unavailable(ACCOUNTING, local_slurm.no_accounting)
    return local_slurm
