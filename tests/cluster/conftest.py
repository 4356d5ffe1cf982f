"""Fixtures for the cluster tests: they live in cluster_helpers.py with the helpers the tests
import (a conftest module is not meant to be imported)."""

from cluster_helpers import env, kubectl, namespace, operator, prometheus

__all__ = ["env", "kubectl", "namespace", "operator", "prometheus"]
