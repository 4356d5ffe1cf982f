"""The dev cluster's kubelet: runs the pods bound to one Node as local processes.

There is no container runtime on the development machine, so this program plays the kubelet
for the node ``bertsweep-dev`` (see devcluster/up.sh, which runs it as
``PYTHONPATH=devcluster .venv/bin/python -m podrunner``). Everything else is the real control
plane.

What it does, per pod with ``spec.nodeName == NODE`` (all namespaces):

* gives the pod its own loopback address 127.1.x.y (Linux answers all of 127/8), so that every pod
  can listen on the same container port, as on a real cluster;
* runs the FIRST container's ``command`` + ``args`` as a local process. The container IMAGE IS
  IGNORED: executables resolve on a PATH that puts the repository's ``.venv/bin`` first, so a pod
  spec written for the BertSweep images runs the same code from this checkout. ``env`` (plain
  values, ``valueFrom`` fieldRef/resourceFieldRef/configMapKeyRef/secretKeyRef, ``envFrom``) and
  ``workingDir`` (default: the repository root) are honoured, ``$(VAR)`` references expanded;
* runs it in a private mount namespace (``unshare --mount --propagation private``) where the
  container's ``terminationMessagePath`` and its ``emptyDir``/``configMap``/``secret``/``hostPath``
  volumes are per-pod host files and directories bind-mounted at their paths (a missing mount
  point is created on the host, empty, and removed again when the runner stops);
* reports the pod Running, then Succeeded/Failed with the container's exit code and termination
  message (``FallbackToLogsOnError`` supported); the containerID is ``bertsweep://<pid>``;
* on deletion sends SIGTERM to the pod's process group, SIGKILL after the grace period, then
  deletes the pod object with grace period 0 (the kubelet's part of graceful deletion);
* never restarts a container (``restartPolicy: Never`` semantics for every pod);
* publishes the Running pods that expose a container port named ``metrics`` (or the annotation
  ``prometheus.io/port``) as Prometheus file_sd targets with the labels ``namespace``, ``pod`` and
  every pod label, sanitized as kubernetes_sd + labelmap would (``app.kubernetes.io/name`` ->
  ``app_kubernetes_io_name``); annotation ``prometheus.io/path`` sets the metrics path;
* registers the Node (capacity, ``nvidia.com/gpu``, InternalIP 127.0.0.1) and heartbeats its Ready
  condition;
* serves the kubelet's log endpoint (``GET /containerLogs/NS/POD/CONTAINER``, HTTPS on
  127.0.0.1 at the Node's ``daemonEndpoints.kubeletEndpoint.Port``), so that ``kubectl logs``
  and ``kubectl logs -f`` work without any name lookup.

With ``--simulate-in-process`` (devcluster/up.sh's default; ``DEVCLUSTER_SIMULATE_IN_PROCESS=0``
turns it off) a pod whose container runs the simulated trainer (``bertsweep-trainer --simulate
SECONDS``, the benchmarks' trials) gets no process: the runner plays it in a thread of its own,
with the trainer's own code, the same status, termination message, /metrics and signals
(``inprocess``). The Node's annotation ``bertsweep.io/simulate-in-process`` says which.

stdout and stderr of a pod go to ``STATE/pods/NAMESPACE_NAME.log``. ``kubectl exec``,
``attach`` and ``port-forward`` do not work (the kubelet API serves logs only).

The modules, each with its contract in its docstring: ``main`` (command line, wiring),
``runner`` (what happens to each pod), ``state`` (the per-pod state machine), ``watch``
(list/watch), ``node`` (the Node object), ``env`` (container environment, ConfigMap/Secret
reads), ``volumes`` (volumes and mounts), ``process`` (launch, supervise, kill, leftovers),
``status`` (status patches, deletion), ``discovery`` (Prometheus targets), ``logs`` (reading
logs and termination messages), ``kubelet_api`` (the HTTPS log endpoint), ``inprocess``
(simulated trainers played in-process), ``common``.
"""
