"""A CPU budget for one process, the way a container runtime gives one (``docker run
--cpus=X``): a cgroup with a CFS quota of ``X * period`` per ``period``.

``bench/run.py --instance-cpus X`` puts each server instance in its own budget, so that
on a small machine the instances are the bottleneck and PostgreSQL and the client keep
the cores left over. cgroup v1 (the ``cpu`` hierarchy, ``cpu.cfs_quota_us``) and v2
(``cpu.max``) are both handled; making the group needs root (or a delegated subtree).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BudgetError", "CpuBudget", "Throttling"]

V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")
PREFIX = "inspectsync-bench-"


class BudgetError(RuntimeError):
    """No writable cgroup cpu controller here (not root, or the controller is absent)."""


@dataclass(frozen=True)
class Throttling:
    """The group's ``cpu.stat`` so far: CFS periods, periods throttled, seconds throttled."""

    periods: int
    throttled: int
    seconds: float

    def __sub__(self, other: Throttling) -> Throttling:
        return Throttling(
            self.periods - other.periods,
            self.throttled - other.throttled,
            self.seconds - other.seconds,
        )


def _root() -> tuple[Path, int]:
    """Where to make groups, and the cgroup version."""
    if (V1 / "cpu.cfs_quota_us").exists() and os.access(V1, os.W_OK):
        return V1, 1
    controllers = V2 / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split() and os.access(V2, os.W_OK):
        return V2, 2
    raise BudgetError(
        "--instance-cpus needs a writable cgroup cpu controller (cgroup v1 at"
        f" {V1} or v2 with 'cpu' in {controllers}); run as root, or without --instance-cpus"
    )


class CpuBudget:
    """``cpus`` of a core for the processes added, in CFS periods of ``period_us``."""

    def __init__(self, name: str, cpus: float, period_us: int) -> None:
        root, self.version = _root()
        self._sweep(root)
        self.path = root / f"{PREFIX}{os.getpid()}-{name}"
        quota = max(1000, round(cpus * period_us))  # the kernel's minimum quota is 1 ms
        try:
            if self.version == 2:  # let children of the root have the cpu controller
                (root / "cgroup.subtree_control").write_text("+cpu")
            self.path.mkdir()
            if self.version == 1:
                (self.path / "cpu.cfs_period_us").write_text(str(period_us))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            else:
                (self.path / "cpu.max").write_text(f"{quota} {period_us}")
        except OSError as exc:
            self.remove()
            raise BudgetError(f"cannot set up the cgroup {self.path}: {exc}") from exc

    @staticmethod
    def _sweep(root: Path) -> None:
        """Remove the empty groups of earlier runs that were killed before cleaning up."""
        for old in root.glob(f"{PREFIX}*"):
            owner = old.name[len(PREFIX) :].split("-", 1)[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                with contextlib.suppress(OSError):
                    old.rmdir()

    def add(self, pid: int) -> None:
        """Move the process (all its threads) into the group."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttling(self) -> Throttling:
        stat = dict(
            (k, int(v))
            for k, v in (line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        )
        if self.version == 1:
            seconds = stat.get("throttled_time", 0) / 1e9
        else:
            seconds = stat.get("throttled_usec", 0) / 1e6
        return Throttling(stat.get("nr_periods", 0), stat.get("nr_throttled", 0), seconds)

    def remove(self) -> None:
        """Move any process left back to the root group and remove the group."""
        if not self.path.exists():
            return
        try:
            for pid in (self.path / "cgroup.procs").read_text().split():
                (self.path.parent / "cgroup.procs").write_text(pid)
            self.path.rmdir()
        except OSError as exc:
            print(f"cgroup {self.path} not removed: {exc}", file=sys.stderr)
