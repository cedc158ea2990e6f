"""Serving: the service state, reloads, batching concurrent model calls, process tuning.
Imports ranking and below, never api."""

from procqa.serving.service import INDEX_ERRORS, Service, ServiceStatus

__all__ = ["INDEX_ERRORS", "Service", "ServiceStatus"]
