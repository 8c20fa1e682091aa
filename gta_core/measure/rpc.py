"""Measuring on a farm of machines through TVM's RPC tracker.

Every server the tracker lists under the key is used at once: the runner's pool has one
worker per server, and each worker's session is granted by the tracker to a free server.
A server that dies costs the candidates it had in flight (their runs fail on the bounded
client timeout); a tracker that disappears ends the run with :class:`RPCUnavailable`.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from .settings import MeasureSettings, RPCUnavailable

if TYPE_CHECKING:
    from tvm.s_tir import meta_schedule as ms

# Seconds an RPC measurement may take beyond its session timeout: tracker queueing, upload.
RPC_CLIENT_SLACK_S = 30.0


def make_rpc_runner(settings: MeasureSettings,
                    evaluator: ms.runner.EvaluatorConfig) -> ms.runner.RPCRunner:
    """An RPCRunner over every server of ``settings.rpc``'s key (RPCUnavailable if none).

    Every measurement is bounded on this side too: TVM's RPC server stops serving after a
    session crashes (its listen loop re-raises the child's exit code) and leaves the client
    waiting forever, so one crashing candidate would otherwise hang the search. Such a
    server must be restarted.
    """
    from tvm.s_tir import meta_schedule as ms
    from tvm.support.popen_pool import PopenPoolExecutor

    rpc = settings.rpc
    session = rpc.session_timeout_s or settings.run_timeout_s
    config = ms.runner.RPCConfig(tracker_host=rpc.tracker_host, tracker_port=rpc.tracker_port,
                                 tracker_key=rpc.key, session_timeout_sec=session)
    servers = tracker_servers(config)
    runner = ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator)
    runner.pool.shutdown()  # its pool waits without limit; replace it with a bounded one
    # Its workers' stderr is TVM's retry chatter and thread tracebacks when a tracker or
    # server goes away; what failed comes back in each result.
    runner.pool = PopenPoolExecutor(max_workers=servers, timeout=session + RPC_CLIENT_SLACK_S,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return runner


def tracker_servers(config: ms.runner.RPCConfig, timeout_s: float = 10.0) -> int:
    """How many servers the tracker lists under the key; RPCUnavailable if it cannot be
    reached or lists none. Asks directly: TVM's own client retries a refused connection 60 s."""
    import socket
    import struct

    from tvm.rpc import base

    where = f"RPC tracker {config.tracker_host}:{config.tracker_port}"
    try:
        with socket.create_connection((config.tracker_host, config.tracker_port),
                                      timeout=timeout_s) as sock:
            sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            magic = struct.unpack("<i", base.recvall(sock, 4))[0]
            if magic == base.RPC_TRACKER_MAGIC:
                base.sendjson(sock, [base.TrackerCode.SUMMARY])
                code, summary = base.recvjson(sock)
    except (OSError, RuntimeError, ValueError, struct.error) as exc:
        raise RPCUnavailable(f"{where} cannot be reached: {exc}".splitlines()[0]) from None
    if magic != base.RPC_TRACKER_MAGIC or code != base.TrackerCode.SUCCESS:
        raise RPCUnavailable(f"{where} does not answer as an RPC tracker")
    keys = [server["key"].partition(":")[2] for server in summary.get("server_info", [])]
    servers = keys.count(config.tracker_key)
    if not servers:
        raise RPCUnavailable(f"{where} has no server with key {config.tracker_key!r}; start one "
                             f"with python -m tvm.exec.rpc_server --tracker "
                             f"{config.tracker_host}:{config.tracker_port} "
                             f"--key {config.tracker_key}")
    return servers


def check_farm(runner) -> None:
    """Raise RPCUnavailable when ``runner`` measures through a tracker that is gone (called
    after a batch whose every run failed, so a vanished tracker ends the run)."""
    config = getattr(runner, "rpc_config", None)
    if config is not None:
        try:
            tracker_servers(config)
        except RPCUnavailable as exc:
            raise RPCUnavailable(f"{exc}; every record measured before it is kept, rerun to "
                                 "resume") from None
