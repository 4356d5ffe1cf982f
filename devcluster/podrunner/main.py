"""The pod runner's command line: parse it, wire the parts together, run until SIGTERM/SIGINT.

Start order: take over the state folder (kill what an earlier runner left running), start the
kubelet API (its port goes into the Node's status), register the Node, then heartbeat and
list/watch in threads of their own. On SIGTERM or SIGINT: end the watch, stop every pod's
process (``--shutdown-grace`` seconds between SIGTERM and SIGKILL), remove the mount points
created on the host, publish no Prometheus targets, stop the kubelet API. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import kubernetes
import urllib3

from .common import REPO, Settings
from .kubelet_api import KubeletServer, tls_context
from .node import NodeAgent
from .process import check_unshare
from .runner import PodRunner
from .watch import PodWatcher

log = logging.getLogger("podrunner")


def parse_args(argv: list[str] | None) -> tuple[Settings, bool]:
    p = argparse.ArgumentParser(
        prog="python -m podrunner",
        description="The dev cluster's kubelet: runs the pods bound to one Node as processes.",
    )
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--node-name", default="bertsweep-dev")
    p.add_argument("--state-dir", default=str(REPO / ".devcluster"))
    p.add_argument(
        "--sd-file",
        default=None,
        help="Prometheus file_sd JSON (default STATE/prometheus/targets.json)",
    )
    # The machine's own cores: what a pod without a CPU limit sees as its node's (the downward
    # API's limits.cpu), so that trials size their thread pools to what is really there.
    p.add_argument("--cpu", type=int, default=os.cpu_count() or 1)
    p.add_argument("--memory", default="64Gi")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--gpus", type=int, default=4)
    p.add_argument("--heartbeat", type=float, default=10.0)
    p.add_argument(
        "--shutdown-grace",
        type=float,
        default=5.0,
        help="seconds the pods get between SIGTERM and SIGKILL when the runner stops",
    )
    p.add_argument(
        "--kubelet-port",
        type=int,
        default=0,
        help="port of the kubelet API (container logs) on 127.0.0.1 (default: any free one)",
    )
    p.add_argument("--tls-cert-file", help="the kubelet API's certificate (PEM)")
    p.add_argument("--tls-private-key-file", help="its key (PEM)")
    p.add_argument(
        "--client-ca-file",
        help="serve only clients with a certificate this CA signed (the API server's)",
    )
    p.add_argument(
        "--simulate-in-process",
        action="store_true",
        help="run pods of the simulated trainer (bertsweep-trainer --simulate) in this "
        "process, a thread each, instead of as processes (see podrunner/inprocess.py)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    if bool(a.tls_cert_file) != bool(a.tls_private_key_file):
        p.error("--tls-cert-file and --tls-private-key-file go together")
    state_dir = Path(a.state_dir).resolve()
    sd_file = Path(a.sd_file) if a.sd_file else state_dir / "prometheus" / "targets.json"
    settings = Settings(
        kubeconfig=a.kubeconfig,
        node_name=a.node_name,
        state_dir=state_dir,
        sd_file=sd_file.resolve(),
        cpu=a.cpu,
        memory=a.memory,
        max_pods=a.max_pods,
        gpus=a.gpus,
        heartbeat_s=a.heartbeat,
        shutdown_grace_s=a.shutdown_grace,
        kubelet_port=a.kubelet_port,
        tls_cert=Path(a.tls_cert_file) if a.tls_cert_file else None,
        tls_key=Path(a.tls_private_key_file) if a.tls_private_key_file else None,
        client_ca=Path(a.client_ca_file) if a.client_ca_file else None,
        simulate_in_process=bool(a.simulate_in_process),
    )
    return settings, bool(a.verbose)


def kubelet_server(settings: Settings, runner: PodRunner) -> KubeletServer | None:
    if settings.tls_cert is None or settings.tls_key is None:
        log.warning("no --tls-cert-file: no kubelet API, `kubectl logs` will not reach this node")
        return None
    tls = tls_context(settings.tls_cert, settings.tls_key, settings.client_ca)
    return KubeletServer(settings.kubelet_port, runner.container_log, tls)


def main(argv: list[str] | None = None) -> int:
    settings, verbose = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname).1s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # The dev cluster's API server has a self-signed certificate (insecure-skip-tls-verify).
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    kubernetes.config.load_kube_config(config_file=settings.kubeconfig)  # type: ignore[no-untyped-call]
    # One connection per pod thread that may be writing a status at once: past the pool's
    # size (cpu_count * 5 by default) every request would pay a new TLS connection, here and
    # in the API server.
    conf = kubernetes.client.Configuration.get_default_copy()
    conf.connection_pool_maxsize = settings.max_pods + 8
    kubernetes.client.Configuration.set_default(conf)
    # Typed as Any: the runner sends and reads raw JSON (dicts), never the client's models.
    api: Any = kubernetes.client.CoreV1Api()

    if settings.simulate_in_process:
        # Loaded now rather than by the first such pod, whose start would wait for the import.
        try:
            from . import inprocess  # noqa: F401
        except ImportError as e:
            log.warning("--simulate-in-process: the trainer does not import (%s): processes", e)
            settings = dataclasses.replace(settings, simulate_in_process=False)

    runner = PodRunner(settings, api, private_mounts=check_unshare())
    stop = runner.stop

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d received", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    runner.take_over()
    server = kubelet_server(settings, runner)
    if server is not None:
        server.start()
    node = NodeAgent(api, settings, server.port if server else 0)
    node.register()
    watcher = PodWatcher(api, settings.node_name, runner, stop)
    threading.Thread(
        target=node.heartbeat_loop, args=(stop,), daemon=True, name="heartbeat"
    ).start()
    threading.Thread(target=watcher.loop, daemon=True, name="watch").start()
    log.info(
        "pod runner for node %s up (private mounts: %s, simulated trainers in-process: %s)",
        settings.node_name,
        runner.private_mounts,
        settings.simulate_in_process,
    )
    stop.wait()
    watcher.close()
    runner.shutdown()
    if server is not None:
        server.stop()
    return 0
