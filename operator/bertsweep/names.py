"""The names a sweep gives its trials, pods and labels, within Kubernetes' limits.

A sweep's name may be any DNS subdomain the API server accepts (up to 253 characters), but a
trial's name is also the value of its pods' `trial` label, and label values stop at 63
characters. A name that would pass 63 is therefore shortened, and a stable hash of the whole
name keeps shortened names apart: sweeps whose names share their first 50 characters still get
trials of their own. Names are a pure function of their parts, so creating a trial twice is a
409 on the same name, never a second trial.
"""

from __future__ import annotations

import hashlib

LABEL_VALUE_MAX = 63
_HASH_LENGTH = 8


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LENGTH]


def _fit(prefix: str, suffix: str, whole: str) -> str:
    """`prefix` + `suffix` if that fits a label value, else `prefix` cut and a hash of `whole`
    between them. Cuts never leave a '-' or '.' at the join (not valid at a label's end)."""
    if len(prefix) + len(suffix) <= LABEL_VALUE_MAX:
        return prefix + suffix
    keep = LABEL_VALUE_MAX - len(suffix) - _HASH_LENGTH - 1
    return f"{prefix[:keep].rstrip('-.')}-{_digest(whole)}{suffix}"


def sweep_label(sweep: str) -> str:
    """The value of the `bertsweep` label on a sweep's trials, pods and Events."""
    return _fit(sweep, "", sweep)


def trial_name(sweep: str, index: int) -> str:
    """The name of a sweep's index-th trial: `<sweep>-0003`, shortened to 63 characters."""
    return _fit(sweep, f"-{index:04d}", sweep)


def pod_name(trial: str, retries: int = 0) -> str:
    """The pod of a trial's attempt: the trial's name, then `-r1`, `-r2`, ... for the attempts
    that start it again after the cluster lost it (each attempt a pod of its own, so a
    terminating pod of the last attempt never stands in the way of the next)."""
    return trial if retries == 0 else f"{trial}-r{retries}"


def finalize_pod_name(sweep: str, generation: int | None) -> str:
    """The pod that finalizes the models of a sweep's generation (once per generation: an
    edited spec that runs more trials is finalized again)."""
    return _fit(sweep, f"-finalize-g{generation or 0}", sweep)
