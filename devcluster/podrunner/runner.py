"""What happens to each pod bound to this node, from the watch's events to its process and back
to its status: the ``PodHandler`` that watch.py feeds.

``PodRunner`` keeps one ``Run`` per pod it started (by uid) and moves it through the state
machine of state.py; each edge taken decides the one action due: launch and report Running,
start a kill (SIGTERM, SIGKILL after the grace period), write the final status, delete the
object with grace period 0, remove the pod's files. A process is supervised by a thread of its
own. A pod Running without a process here (the runner restarted) is marked Failed
(``NodeRestart``); a pod marked for deletion that has no process here is deleted at once.
``PodStartError`` on the way to a process fails the pod with its reason and message.

With ``--simulate-in-process`` a pod whose container runs the simulated trainer
(``bertsweep-trainer --simulate SECONDS``) gets no process: its thread plays the trial itself
(inprocess.py), through the same states, status patches, signals and clean-up. Every other pod,
and every pod without the switch, runs as a process as described above.

It also answers where a pod's log is (for kubelet_api.py) and keeps the Prometheus targets
(discovery.py) in step with the running pods: rewritten by a thread of their own, at most every
``TARGETS_EVERY_S`` (Prometheus reads the file every second; at dozens of pods a second,
rewriting it at every start and end showed in the runner's profile).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import threading
import time
from collections.abc import Collection
from typing import Any

from . import process, volumes
from .common import (
    DEFAULT_GRACE_S,
    DEFAULT_PATH,
    HOST_PATHS,
    MAX_TERMINATION_MESSAGE,
    REPO,
    Json,
    PodStartError,
    Settings,
    first_container,
    now_rfc3339,
    pod_key,
)
from .discovery import Target, TargetFile, metrics_endpoint
from .env import ConfigReader, PodPlace, container_env, expand_vars
from .kubelet_api import ContainerLog
from .logs import log_tail, read_limited
from .state import PodEvent, PodState, Run
from .status import (
    Container,
    PodWriter,
    container_id,
    exit_code,
    exited_status,
    node_restart_status,
    running_status,
    start_failed_status,
)

log = logging.getLogger("podrunner")

# Pod addresses 127.1.x.y, y in 1..254: Linux answers all of 127/8 on the loopback device.
POD_IPS = 256 * 254
TARGETS_EVERY_S = 0.2


def pod_ip(index: int) -> str:
    return f"127.1.{index // 254}.{index % 254 + 1}"


def summarize(argv: list[str], width: int = 120) -> str:
    text = re.sub(r"\s+", " ", shlex.join(argv))
    return text if len(text) <= width else text[: width - 3] + "..."


class PodRunner:
    def __init__(self, settings: Settings, api: Any, private_mounts: bool) -> None:
        self.settings = settings
        self.node = settings.node_name
        self.pods_dir = settings.pods_dir
        self.run_dir = settings.run_dir
        self.private_mounts = private_mounts
        self.mount_bin = process.find_tool("mount")
        self.writer = PodWriter(api)
        self.config = ConfigReader(api)
        self.targets = TargetFile(settings.sd_file)
        self.mountpoints = volumes.Mountpoints(self.pods_dir / "mountpoints.txt")
        self.stop = threading.Event()
        # Guards runs, the pod addresses and the target file; a Run's state has its own lock.
        self.lock = threading.RLock()
        self.runs: dict[str, Run] = {}
        # The runs whose container was started and has not ended: the only ones that can be
        # Prometheus targets. (A big sweep leaves thousands of ended runs in `runs` until their
        # pods are deleted; the targets are rewritten at every start and end.)
        self.live: dict[str, Run] = {}
        self.used_ips: set[str] = set()
        self.next_ip = 0
        self.targets_due = threading.Event()

    # ----------------------------------------------------------------- the watch's events
    def known_uids(self) -> Collection[str]:
        with self.lock:
            return list(self.runs)

    def handle(self, pod: Json) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        with self.lock:
            run = self.runs.get(uid)
        if meta.get("deletionTimestamp"):
            if run is None:
                self.writer.force_delete(meta["namespace"], meta["name"], uid)
                return
            old, new = run.advance(PodEvent.DELETION_REQUESTED)
            if new is PodState.DELETING and old is not new:
                self.writer.force_delete(run.namespace, run.name, run.uid)
            elif new is PodState.TERMINATING and old is not new:
                grace = meta.get("deletionGracePeriodSeconds")
                process.terminate(run, run.grace_s if grace is None else int(grace))
            return
        if run is not None:
            return
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if phase == "Pending":
            self.start(pod)
        elif phase == "Running":
            log.info(
                "%s: Running without a process here; marking Failed (NodeRestart)", pod_key(pod)
            )
            self.writer.patch_status(
                meta["namespace"],
                meta["name"],
                node_restart_status(Container.of(pod), now_rfc3339()),
            )

    def deleted(self, uid: str, pod: Json | None) -> None:
        with self.lock:
            run = self.runs.pop(uid, None)
        if run is None:
            return
        old, new = run.advance(PodEvent.OBJECT_GONE)
        if new is PodState.GONE:
            self.cleanup(run)
        elif new is PodState.ORPHANED and old in (PodState.STARTING, PodState.RUNNING):
            grace = run.grace_s
            g = (pod or {}).get("metadata", {}).get("deletionGracePeriodSeconds")
            if g is not None:
                grace = int(g)
            process.terminate(run, grace)
        self.write_targets()

    # ----------------------------------------------------------------- start
    def allocate_ip(self) -> str:
        with self.lock:
            for _ in range(POD_IPS):
                ip = pod_ip(self.next_ip)
                self.next_ip = (self.next_ip + 1) % POD_IPS
                if ip not in self.used_ips:
                    self.used_ips.add(ip)
                    return ip
        raise PodStartError("OutOfAddresses", "no free loopback address in 127.1.0.0/16")

    def release_ip(self, run: Run) -> None:
        with self.lock:
            self.used_ips.discard(run.ip)

    def start(self, pod: Json) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        c = first_container(pod)
        pod_dir = self.run_dir / uid
        metrics_port, metrics_path = metrics_endpoint(pod)
        run = Run(
            uid=uid,
            namespace=ns,
            name=name,
            ip=self.allocate_ip(),
            pod_dir=pod_dir,
            log_path=self.pods_dir / f"{ns}_{name}.log",
            term_path=pod_dir / "termination-log",
            fallback_to_logs=c.get("terminationMessagePolicy") == "FallbackToLogsOnError",
            container=c.get("name", "main"),
            image=c.get("image", ""),
            grace_s=int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)),
            labels=dict(meta.get("labels") or {}),
            metrics_port=metrics_port,
            metrics_path=metrics_path,
        )
        with self.lock:
            self.runs[uid] = run
        if len(spec.get("containers") or []) > 1:
            log.warning(
                "%s: only the first of %d containers runs", run.key, len(spec["containers"])
            )
        try:
            argv = self.launch(pod, c, run)
        except Exception as e:
            if isinstance(e, PodStartError):
                log.warning("%s cannot start: %s", run.key, e.message)
                err = e
            else:
                log.exception("%s: start failed", run.key)
                err = PodStartError("StartError", f"podrunner: {e}")
            # Off the watch thread: the watch goes on while the failure is reported.
            threading.Thread(target=self.fail_start, args=(run, pod, err), daemon=True).start()
            return
        run.advance(PodEvent.LAUNCHED)
        with self.lock:
            self.live[uid] = run
        self.write_targets()
        how = f"pid {run.proc.pid}" if run.proc else "in-process" if run.sim else "-"
        log.info("%s started: %s ip %s: %s", run.key, how, run.ip, summarize(argv))
        threading.Thread(
            target=self.supervise, args=(run, pod), daemon=True, name=f"pod-{run.key}"
        ).start()

    def launch(self, pod: Json, c: Json, run: Run) -> list[str]:
        """Prepare the pod's environment, files and mounts and start its process."""
        if not c:
            raise PodStartError("CreateContainerConfigError", "the pod has no container")
        command = list(c.get("command") or [])
        if not command:
            raise PodStartError(
                "CreateContainerConfigError",
                "the dev cluster ignores images: the container needs an explicit `command`",
            )
        run.pod_dir.mkdir(parents=True, exist_ok=True)
        place = PodPlace(ip=run.ip, node=self.node, allocatable=self.settings.allocatable)
        env = container_env(pod, c, place, os.environ, self.config)
        argv = [expand_vars(str(a), env) for a in command + list(c.get("args") or [])]
        if "/" not in argv[0]:
            found = shutil.which(argv[0], path=env.get("PATH", DEFAULT_PATH))
            if found is None:
                raise PodStartError(
                    "StartError", f'executable "{argv[0]}" not found in $PATH ({env.get("PATH")})'
                )
            argv[0] = found
        cwd = c.get("workingDir") or str(REPO)
        run.term_path.touch()
        vols = volumes.prepare_volumes(pod, run.pod_dir, self.config)
        if self.settings.simulate_in_process and self.play_in_process(c, argv, env, run):
            return argv
        mounts = volumes.container_mounts(c, vols, run.term_path)
        if not self.private_mounts:
            mounts = []  # nowhere to mount them: the pod sees the host's paths
        for m in mounts:
            self.mountpoints.ensure(m.source, m.target)
        lines, inner_dirs = volumes.mount_script(mounts, HOST_PATHS, self.mount_bin, cwd)
        for d in inner_dirs:
            d.mkdir(parents=True, exist_ok=True)
        cmd = process.pod_command(lines, argv, self.private_mounts)
        run.started_at = now_rfc3339()
        run.proc = process.spawn(cmd, env, run.log_path, run.pod_dir / "pid")
        return argv

    def play_in_process(self, c: Json, argv: list[str], env: dict[str, str], run: Run) -> bool:
        """Make ``run`` a simulated trainer this runner plays itself, if its container runs one
        that can be played here (inprocess.py); False: it runs as a process."""
        # Imported here: without the switch the runner never loads the trainer.
        from . import inprocess

        args = inprocess.simulated_argv(argv, env)
        if args is None:
            return False
        target = c.get("terminationMessagePath") or volumes.DEFAULT_TERMINATION_PATH
        plan = inprocess.plan_trial(args, env, target)
        if plan is None:
            return False
        run.started_at = now_rfc3339()
        # The log file starts empty, as a process's does (spawn opens it "wb").
        run.log_path.write_bytes(b"")
        run.sim = inprocess.SimulatedPod(plan, run.ip, run.log_path, run.term_path)
        return True

    def fail_start(self, run: Run, pod: Json, err: PodStartError) -> None:
        t = now_rfc3339()
        _, new = run.advance(PodEvent.PROCESS_EXITED)
        run.done.set()
        self.release_ip(run)
        if new is PodState.DELETING:
            self.writer.force_delete(run.namespace, run.name, run.uid)
        elif new is PodState.GONE:
            self.cleanup(run)
        else:
            status = start_failed_status(Container.of(pod), err.reason, err.message, t)
            self.writer.patch_status(run.namespace, run.name, status)

    # ----------------------------------------------------------------- supervise
    def supervise(self, run: Run, pod: Json) -> None:
        sim = run.sim
        try:
            self._supervise(run)
        finally:
            if sim is not None:
                # Its /metrics socket goes (as a process's exit closes it), and only then its
                # address, which a later pod may bind again. The run stays until its pod is
                # deleted, the simulation need not (thousands of them in a big sweep).
                sim.close()
                run.sim = None
                self.release_ip(run)

    def _supervise(self, run: Run) -> None:
        proc, sim = run.proc, run.sim
        if sim is not None:
            cid = sim.container_id
        else:
            assert proc is not None
            cid = container_id(proc.pid)
        c = Container(run.container, run.image)
        self.writer.patch_status(
            run.namespace, run.name, running_status(c, run.ip, cid, run.started_at)
        )
        if sim is not None:
            rc = sim.run()
            _, new = run.advance(PodEvent.PROCESS_EXITED)
        else:
            assert proc is not None
            process.wait_exit(proc)
            rc, _, new = process.reap(run)
        finished = now_rfc3339()
        message = read_limited(run.term_path, MAX_TERMINATION_MESSAGE)
        if not message and rc != 0 and run.fallback_to_logs:
            message = log_tail(run.log_path)
        run.done.set()
        with self.lock:
            self.live.pop(run.uid, None)
        if sim is None:
            self.release_ip(run)
        self.write_targets()
        log.info("%s exited with code %d", run.key, exit_code(rc))
        if self.stop.is_set():
            return
        if new is not PodState.GONE:
            status = exited_status(c, cid, rc, message, run.started_at, finished)
            self.writer.patch_status(run.namespace, run.name, status)
        if new is PodState.DELETING:
            self.writer.force_delete(run.namespace, run.name, run.uid)
        elif new is PodState.GONE:
            self.cleanup(run)

    def cleanup(self, run: Run) -> None:
        shutil.rmtree(run.pod_dir, ignore_errors=True)

    # ----------------------------------------------------------------- what others ask
    def write_targets(self) -> None:
        """Have the Prometheus targets rewritten (within ``TARGETS_EVERY_S``)."""
        self.targets_due.set()

    def targets_loop(self) -> None:
        while True:
            self.targets_due.wait()
            if self.stop.is_set():
                return
            self.targets_due.clear()
            self.flush_targets()
            self.stop.wait(TARGETS_EVERY_S)

    def flush_targets(self) -> None:
        """Write the Prometheus targets of the running pods now."""
        with self.lock:
            self.targets.write(
                Target(r.namespace, r.name, r.ip, r.metrics_port, r.metrics_path, r.labels)
                for r in self.live.values()
                if r.metrics_port is not None
                and r.launched
                and r.state in (PodState.RUNNING, PodState.TERMINATING)
            )

    def container_log(self, ns: str, name: str) -> ContainerLog | None:
        """Where pod ``ns/name``'s log is; its process's, if it has one here (for ``follow``)."""
        with self.lock:
            runs = [r for r in self.runs.values() if r.namespace == ns and r.name == name]
        if runs:
            run = min(runs, key=lambda r: r.state.process_ended)  # a live one first
            return ContainerLog(run.log_path, run.container, run.done)
        path = self.pods_dir / f"{ns}_{name}.log"
        return ContainerLog(path, None, None) if path.is_file() else None

    # ----------------------------------------------------------------- runner life
    def take_over(self) -> None:
        """Make the state folder this runner's: kill what a previous runner left running."""
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        process.reap_leftovers(self.run_dir)
        self.mountpoints.remove_all()
        self.flush_targets()
        threading.Thread(target=self.targets_loop, daemon=True, name="targets").start()

    def shutdown(self) -> None:
        """Stop every pod's process (SIGTERM, SIGKILL after the shutdown grace) and clean up.
        The pods' objects are left as they are: a runner that starts again fails them."""
        with self.lock:
            runs = [r for r in self.runs.values() if not r.state.process_ended]
        log.info("stopping: killing the processes of %d pods", len(runs))
        self.targets_due.set()  # the targets thread sees `stop` and ends
        for r in runs:
            process.signal_group(r, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        for r in runs:
            r.done.wait(max(0.0, deadline - time.monotonic()))
        for r in runs:
            process.signal_group(r, signal.SIGKILL)
        for r in runs:
            r.done.wait(2.0)
        with self.lock:
            for r in self.runs.values():
                self.cleanup(r)
            self.runs.clear()
            self.live.clear()
            self.mountpoints.remove_all()
            self.targets.clear()
        log.info("stopped")
