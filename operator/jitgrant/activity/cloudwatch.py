"""`CloudWatchAuditLogs`: EKS control-plane audit logs in CloudWatch Logs (needs the `aws` extra).

boto3 is imported when the first page is read, so importing this module does not need it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from jitgrant.activity.base import SourceError, Window
from jitgrant.activity.events import ApiCall, parse_lines
from jitgrant.extras import require

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient


#: The API errors that mean "slow down" (CloudWatch Logs answers ThrottlingException).
_THROTTLED = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})


def eks_log_group(cluster: str) -> str:
    return f"/aws/eks/{cluster}/cluster"


class CloudWatchAuditLogs:
    """EKS control-plane audit logs: FilterLogEvents over the cluster's log group, paged."""

    STREAM_PREFIX = "kube-apiserver-audit"

    def __init__(
        self,
        *,
        cluster: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        log_group: str | None = None,
        client: CloudWatchLogsClient | None = None,
        page_size: int = 10_000,
        retries: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster = cluster
        self.log_group = log_group or eks_log_group(cluster)
        self.name = f"CloudWatch Logs {self.log_group}"
        self._region, self._endpoint_url = region, endpoint_url
        self._client = client
        self._page_size, self._retries, self._backoff, self._sleep = page_size, retries, backoff, sleep

    def _logs(self) -> CloudWatchLogsClient:
        if self._client is None:
            require("aws", feature="reading EKS audit logs from CloudWatch Logs")
            import boto3

            self._client = boto3.session.Session().client(
                "logs", region_name=self._region, endpoint_url=self._endpoint_url
            )
        return self._client

    def calls(self, window: Window) -> Iterator[ApiCall]:
        for page in self._pages(window):
            messages = (
                event.get("message", "")
                for event in page.get("events", [])
                if str(event.get("logStreamName", "")).startswith(self.STREAM_PREFIX)
            )
            yield from parse_lines(messages)

    def _pages(self, window: Window) -> Iterator[dict[str, Any]]:
        slack = timedelta(seconds=5)
        request: dict[str, Any] = {
            "logGroupName": self.log_group,
            "logStreamNamePrefix": self.STREAM_PREFIX,
            "startTime": int((window.start - slack).timestamp() * 1000),
            "limit": self._page_size,
        }
        if window.end is not None:
            request["endTime"] = int((window.end + slack).timestamp() * 1000)
        if window.terms:
            # "?a ?b": any of the terms; the identity or the binding name is in every call of the grant.
            request["filterPattern"] = " ".join(f'?"{term}"' for term in sorted(window.terms))
        while True:
            page = self._call(request)
            yield page
            token = page.get("nextToken")
            if not token:
                return
            request["nextToken"] = token

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return dict(self._logs().filter_log_events(**request))
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "ResourceNotFoundException":
                    raise SourceError(self._missing_group()) from exc
                if code not in _THROTTLED:
                    raise SourceError(f"cannot read {self.name}: {exc}") from exc
                if attempt == self._retries:
                    raise SourceError(
                        f"CloudWatch Logs kept throttling the reads of {self.log_group} "
                        f"({self._retries + 1} tries): try again in a minute, or narrow the window"
                    ) from exc
                self._sleep(delay)
                delay *= 2
            except BotoCoreError as exc:
                raise SourceError(f"cannot read {self.name}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _missing_group(self) -> str:
        return (
            f"log group {self.log_group} does not exist: control-plane audit logging is off for EKS "
            f"cluster {self.cluster!r} (or the region is wrong). Turn it on with: aws eks "
            f"update-cluster-config --name {self.cluster} --logging "
            '\'{"clusterLogging":[{"types":["audit"],"enabled":true}]}\'; '
            "calls made before that are not recorded anywhere"
        )
