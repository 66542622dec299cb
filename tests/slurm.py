"""A throwaway one-node Slurm cluster for tests: munged, slurmctld and slurmd on 127.0.0.1,
everything (key, state, spool, logs, sockets) in one temporary folder, each daemon stopped by
its PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")


def slurm_installed() -> bool:
    return all(shutil.which(b) for b in BINARIES) and os.geteuid() == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    NODE = "rsnode"

    def __init__(self, base: Path, cpus: int = 2) -> None:
        self.base, self.cpus = base, cpus
        self.conf = base / "slurm.conf"
        self.pidfiles: list[Path] = []

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self) -> None:
        b = self.base
        for sub in ("state", "spool", "munge"):
            (b / sub).mkdir(parents=True, exist_ok=True)
        key = b / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        (b / "munge").chmod(0o700)
        socket_path = b / "munge" / "munge.sock"
        self._daemon(
            [
                "munged",
                "--force",
                f"--socket={socket_path}",
                f"--key-file={key}",
                f"--pid-file={b / 'munge' / 'munged.pid'}",
                f"--log-file={b / 'munge' / 'log'}",
                f"--seed-file={b / 'munge' / 'seed'}",
            ],
            b / "munge" / "munged.pid",
        )
        (b / "plugstack.conf").write_text("")
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=redistilltest",
                    "SlurmctldHost=localhost(127.0.0.1)",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={socket_path}",
                    "CredType=cred/munge",
                    f"StateSaveLocation={b / 'state'}",
                    f"SlurmdSpoolDir={b / 'spool'}",
                    f"SlurmctldPidFile={b / 'slurmctld.pid'}",
                    f"SlurmdPidFile={b / 'slurmd.pid'}",
                    f"SlurmctldLogFile={b / 'slurmctld.log'}",
                    f"SlurmdLogFile={b / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "ReturnToService=2",
                    "MpiDefault=none",
                    f"PlugStackConfig={b / 'plugstack.conf'}",
                    f"NodeName={self.NODE} NodeHostname=localhost NodeAddr=127.0.0.1 "
                    f"CPUs={self.cpus} RealMemory=8000 State=UNKNOWN",
                    f"PartitionName=test Nodes={self.NODE} Default=YES MaxTime=INFINITE State=UP",
                ]
            )
            + "\n"
        )
        self._daemon(["slurmctld", "-f", str(self.conf)], b / "slurmctld.pid")
        self._daemon(["slurmd", "-f", str(self.conf), "-N", self.NODE], b / "slurmd.pid")
        deadline = time.time() + 60
        while time.time() < deadline:
            out = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True
            )
            if out.stdout.strip() == "idle":
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Slurm node never became idle: {self.log_tail()}")

    def _daemon(self, cmd: list[str], pidfile: Path) -> None:
        subprocess.run(cmd, env=self.env, check=True, capture_output=True, timeout=60)
        deadline = time.time() + 20
        while not pidfile.is_file() and time.time() < deadline:
            time.sleep(0.1)
        self.pidfiles.append(pidfile)

    def sbatch(self, *args: str, cwd: Path, env: dict[str, str]) -> str:
        out = subprocess.run(
            ["sbatch", "--parsable", *args],
            cwd=cwd,
            env={**self.env, **env},
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip().split(";")[0]

    def wait(self, job: str, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(
                ["squeue", "-h", "-j", job], env=self.env, capture_output=True, text=True
            )
            if out.returncode == 0 and not out.stdout.strip():
                return
            time.sleep(1)
        raise TimeoutError(f"job {job} still queued or running: {self.log_tail()}")

    def log_tail(self) -> str:
        return "".join(
            (self.base / name).read_text()[-800:]
            for name in ("slurmctld.log", "slurmd.log")
            if (self.base / name).is_file()
        )

    def stop(self) -> None:
        for pidfile in reversed(self.pidfiles):
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        time.sleep(1)
