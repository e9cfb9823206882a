"""What the streams benchmark reads about processes and the machine from /proc (Linux)."""

from __future__ import annotations

from pathlib import Path


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


TCP_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans", "TCPTimeouts")


def tcp_counters() -> dict[str, int]:
    """The machine's TCP trouble counters (/proc/net/netstat, since boot, every process's):
    a listen queue that overflowed drops SYNs, and the client retries after 1, 3, 7 s..."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    found = {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            found = dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=False))
    return {k: found.get(k, 0) for k in TCP_COUNTERS}
