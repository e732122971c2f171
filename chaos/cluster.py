"""Hosts on one machine: a network namespace each, on one private bridge, and partitions.

The bridge lives in a namespace of its own (the switch); every host has one veth into it with an
address on SUBNET. The machine itself joins as the control host (CONTROL), from which the run
starts processes, injects faults and reads the history; partitions never cut it off. Nothing is
routed off the bridge, so nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.77.0"
CONTROL = f"{SUBNET}.1"
PREFIX = "orchx"
# Host name -> last octet of its address.
HOSTS = {
    "postgres": 2,
    "redis": 3,
    "pgbouncer": 4,
    "api1": 11,
    "api2": 12,
    "worker1": 21,
    "worker2": 22,
    "worker3": 23,
    "mail": 30,
    "client": 40,
}


def address(host: str) -> str:
    return f"{SUBNET}.{HOSTS[host]}"


def can_run() -> str | None:
    """Why this machine cannot make the cluster, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("/usr/sbin/ip", "/usr/sbin/nft"):
        if not Path(tool).exists() and not Path(tool.replace("/usr/sbin", "/sbin")).exists():
            return f"{Path(tool).name} is missing (Debian's iproute2 and nftables)"
    return None


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True)


@dataclass
class Cluster:
    """Make with `up()`, remove with `down()` (also removes what an earlier run left behind)."""

    prefix: str = PREFIX
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def switch(self) -> str:
        return f"{self.prefix}-switch"

    def up(self) -> None:
        self.down()
        _run("ip", "netns", "add", self.switch)
        self.exec_in(self.switch, "ip", "link", "add", "br0", "type", "bridge")
        self.exec_in(self.switch, "ip", "link", "set", "br0", "up")
        self.exec_in(self.switch, "ip", "link", "set", "lo", "up")
        for host, octet in HOSTS.items():
            ns = self.namespace(host)
            _run("ip", "netns", "add", ns)
            self._wire(f"{self.prefix}h{octet}", ns, f"{SUBNET}.{octet}")
        # The control host: the machine's own namespace, on the bridge too.
        self._wire(f"{self.prefix}c", None, CONTROL)

    def _wire(self, link: str, ns: str | None, ip: str) -> None:
        """A veth from `ns` (None: the machine's) to the switch's bridge; `ip` on its end."""
        _run("ip", "link", "add", link, "type", "veth", "peer", "name", f"{link}s")
        _run("ip", "link", "set", f"{link}s", "netns", self.switch)
        self.exec_in(self.switch, "ip", "link", "set", f"{link}s", "master", "br0")
        self.exec_in(self.switch, "ip", "link", "set", f"{link}s", "up")
        if ns is not None:
            _run("ip", "link", "set", link, "netns", ns)
            self.exec_in(ns, "ip", "link", "set", "lo", "up")
        prefix = ["ip", "netns", "exec", ns] if ns is not None else []
        _run(*prefix, "ip", "addr", "add", f"{ip}/24", "dev", link)
        _run(*prefix, "ip", "link", "set", link, "up")

    def down(self) -> None:
        for process in self.processes:
            if process.poll() is None:  # an ended one's group id may be someone else's by now
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        self.processes.clear()
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in listed.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(f"{self.prefix}-"):
                for pid in subprocess.run(
                    ["ip", "netns", "pids", name], capture_output=True, text=True
                ).stdout.split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{self.prefix}c"], capture_output=True)

    def exec_in(self, ns: str, *command: str) -> None:
        _run("ip", "netns", "exec", ns, *command)

    def command(self, host: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(host), *command]

    def start(
        self, host: str, command: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """A process on `host`, in a process group of its own, its output appended to `log`."""
        with log.open("ab") as out:
            process = subprocess.Popen(
                self.command(host, *command),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def partition(self, host: str, peers: list[str]) -> None:
        """`host` and `peers` stop hearing each other (packets dropped both ways, silently)."""
        for one, others in [(host, peers), *((peer, [host]) for peer in peers)]:
            addresses = ", ".join(address(other) for other in others)
            rules = (
                "table inet partition {\n"
                "  chain inbound { type filter hook input priority 0;"
                f" ip saddr {{ {addresses} }} drop; }}\n"
                "  chain outbound { type filter hook output priority 0;"
                f" ip daddr {{ {addresses} }} drop; }}\n"
                "}\n"
            )
            subprocess.run(
                self.command(one, "nft", "-f", "-"), input=rules, text=True, check=True, capture_output=True
            )

    def heal(self) -> None:
        for host in HOSTS:
            subprocess.run(self.command(host, "nft", "flush", "ruleset"), capture_output=True)
