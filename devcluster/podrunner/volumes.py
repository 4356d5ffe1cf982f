"""A pod's volumes as host files, and the bind mounts that put them where the container expects.

Each pod's ``emptyDir``, ``configMap`` and ``secret`` volumes are folders under its own
``pods/run/UID/volumes/``; a ``hostPath`` is the host path itself. ``container_mounts`` lists
what to bind where (the termination-message file first, then ``volumeMounts`` with
``subPath`` and ``readOnly``); ``mount_script`` turns that into the shell lines that run inside
the pod's private mount namespace. Both are pure.

A mount point that does not exist on the host has to be created there (bind mounts need one):
``Mountpoints`` creates it empty and records it, so that it is removed again when the runner
stops or, after a crash, when the next runner starts (or devcluster/down.sh runs). A mount
point that already exists is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .common import Json, PodStartError
from .env import CONFIG_ERROR, ConfigLookup

log = logging.getLogger("podrunner")

DEFAULT_TERMINATION_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = False


def projected_items(src: Json, data: dict[str, bytes]) -> list[tuple[str, str, int]]:
    """(key, relative path, mode) of each file a configMap/secret volume holds: its ``items``
    when given, else every key under its own name."""
    mode = int(src.get("defaultMode", 0o644))
    items = src.get("items")
    if items:
        return [(i["key"], i["path"], int(i.get("mode", mode))) for i in items]
    return [(k, k, mode) for k in data]


def prepare_volumes(pod: Json, pod_dir: Path, lookup: ConfigLookup) -> dict[str, Path]:
    """Create the pod's volumes on the host; returns each volume's host path by name."""
    vols: dict[str, Path] = {}
    ns = str(pod["metadata"]["namespace"])
    for v in pod["spec"].get("volumes") or []:
        vname = v["name"]
        vdir = pod_dir / "volumes" / vname
        if "emptyDir" in v:
            vdir.mkdir(parents=True, exist_ok=True)
            vols[vname] = vdir
        elif "configMap" in v or "secret" in v:
            kind = "configmap" if "configMap" in v else "secret"
            src = v.get("configMap") or v.get("secret") or {}
            ref_name = src.get("name") or src.get("secretName", "")
            data = lookup(ns, kind, ref_name, bool(src.get("optional")))
            vdir.mkdir(parents=True, exist_ok=True)
            for key, rel, mode in projected_items(src, data):
                if key not in data:
                    if src.get("optional"):
                        continue
                    raise PodStartError(CONFIG_ERROR, f"{kind} {ref_name} has no key {key}")
                target = vdir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[key])
                target.chmod(mode)
            vols[vname] = vdir
        elif "hostPath" in v:
            hp = Path(v["hostPath"]["path"])
            if v["hostPath"].get("type") == "DirectoryOrCreate":
                hp.mkdir(parents=True, exist_ok=True)
            vols[vname] = hp
        else:
            log.warning("%s: volume %s of an unsupported type is not mounted", pod_dir.name, vname)
    return vols


def container_mounts(container: Json, vols: dict[str, Path], term_path: Path) -> list[Mount]:
    """What to bind where for ``container``: its termination-message file, then its
    ``volumeMounts`` (a mount of a volume that was not prepared is left out). A missing
    ``subPath`` is created in the volume, as the kubelet does."""
    target = container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
    mounts = [Mount(term_path, target)]
    for vm in container.get("volumeMounts") or []:
        src = vols.get(vm["name"])
        if src is None:
            continue
        if vm.get("subPath"):
            src = src / vm["subPath"]
            if not src.exists():
                src.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(src, vm["mountPath"], bool(vm.get("readOnly"))))
    return mounts


def mount_script(
    mounts: Iterable[Mount], host_paths: Iterable[Path], mount_bin: str, cwd: str
) -> tuple[list[str], list[Path]]:
    """The shell lines that set up the mounts and ``exec "$@"`` in ``cwd``, and the folders that
    must exist inside volume sources first (see below)."""
    lines = ["set -e"]
    inner_dirs: list[Path] = []
    for m in mounts:
        q = shlex.quote(m.target)
        # A container image carries its own program; here the program is the host's checkout
        # and interpreter. A volume mounted over one of their parents (the scratch emptyDir at
        # /tmp over a checkout in /tmp) would hide them: bind them into the volume first, and
        # mount it with its submounts.
        shadowed = [p for p in host_paths if Path(m.target) in p.parents]
        for p in shadowed:
            inner = m.source / p.relative_to(m.target)
            inner_dirs.append(inner)
            lines.append(f"{mount_bin} --bind {shlex.quote(str(p))} {shlex.quote(str(inner))}")
        bind = "--rbind" if shadowed else "--bind"
        lines.append(f"{mount_bin} {bind} {shlex.quote(str(m.source))} {q}")
        if m.read_only:
            lines.append(f"{mount_bin} -o remount,bind,ro {q}")
    lines.append(f"cd {shlex.quote(cwd)}")
    lines.append('exec "$@"')
    return lines, inner_dirs


class Mountpoints:
    """The mount points this runner created on the host, recorded in a file so that they are
    removed even after a crash."""

    def __init__(self, record: Path) -> None:
        self.record = record

    def ensure(self, source: Path, target: str) -> None:
        """Create ``target`` (a folder or an empty file, like ``source``) if it does not exist."""
        t = Path(target)
        if t.exists():
            return
        missing = [p for p in [t, *t.parents] if not p.exists()]
        try:
            if source.is_dir():
                t.mkdir(parents=True, exist_ok=True)
            else:
                t.parent.mkdir(parents=True, exist_ok=True)
                t.touch()
        except OSError as e:
            raise PodStartError("StartError", f"cannot create mount point {target}: {e}") from e
        with open(self.record, "a") as f:
            f.writelines(str(p) + "\n" for p in missing)

    def remove_all(self) -> None:
        """Remove the recorded mount points that are still empty, deepest first."""
        if not self.record.is_file():
            return
        paths = sorted(set(self.record.read_text().split("\n")) - {""}, reverse=True)
        for p in paths:
            path = Path(p)
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                elif path.is_file() and path.stat().st_size == 0:
                    path.unlink()
        self.record.unlink(missing_ok=True)
