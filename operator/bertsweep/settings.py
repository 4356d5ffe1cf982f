"""The operator's settings: one model for every environment variable it reads.

Each setting is `BERTSWEEP_<NAME>` (the Helm chart sets them on the Deployment), except the
default Prometheus, which is the conventional `PROMETHEUS_URL`. A value that does not parse
stops the operator at start with the variable named, rather than surfacing mid-sweep.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """What `bertsweep operator` reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="BERTSWEEP_", extra="ignore", frozen=True)

    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    prometheus_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PROMETHEUS_URL", "BERTSWEEP_PROMETHEUS_URL")
    )
    """The Prometheus for sweeps whose spec names none (`--prometheus-url` wins over it)."""
    operator_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    """Where the operator serves its own /metrics; 0: not at all."""
    operator_metrics_addr: str = "0.0.0.0"
    pod_error_timeout_seconds: Annotated[float, Field(gt=0)] = 180.0
    """How long a trial pod may wait in ImagePullBackOff, CreateContainerConfigError, ..."""
    unschedulable_timeout_seconds: Annotated[float, Field(gt=0)] = 900.0
    """How long a trial pod may find no node (GPUs, selectors, taints) before its trial fails."""
    interval_seconds: Annotated[float, Field(gt=0)] = 2.0
    """Seconds between passes of an active sweep."""
    idle_interval_seconds: Annotated[float, Field(gt=0)] = 60.0
    """Seconds between passes of a sweep that has ended or was rejected (it also wakes on
    every change of its spec)."""
    allow_host_path: bool = False
    """Whether trial templates may mount hostPath volumes (the node's filesystem). Off in the
    Helm chart; the dev cluster, whose data lives on the host, turns it on."""
