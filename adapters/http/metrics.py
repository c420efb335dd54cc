"""``/metrics``: Prometheus exposition with the official client library.

A custom collector reads the same per-peer figures as the sync status at
scrape time (queue depth, checkpoint, failures, backoff, dead letters, last
contact, repairs), plus ticket counts by status and the event total.
"""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from node.status import sync_status


class SyncCollector:
    def __init__(self, node):
        self.node = node

    def collect(self):
        with self.node.storage.read() as tx:
            status = sync_status(tx, self.node.node_id)
        labels = ["peer"]
        fams = {
            "queue_depth": GaugeMetricFamily("simpul_queue_depth", "Events queued for a peer", labels=labels),
            "acked": GaugeMetricFamily("simpul_checkpoint_acked", "Last queue position the peer acknowledged",
                                       labels=labels),
            "cursor": GaugeMetricFamily("simpul_checkpoint_cursor", "Last position of the peer's queue we hold",
                                        labels=labels),
            "failures": GaugeMetricFamily("simpul_peer_failures", "Consecutive failed attempts", labels=labels),
            "retry_in": GaugeMetricFamily("simpul_peer_backoff_seconds", "Seconds until the next attempt",
                                          labels=labels),
            "dead": GaugeMetricFamily("simpul_dead_letters", "Dead letters not yet replayed", labels=labels),
            "contact": GaugeMetricFamily("simpul_peer_last_contact_timestamp_seconds", "Last contact", labels=labels),
            "repairs": GaugeMetricFamily("simpul_anti_entropy_repairs", "Events repaired by anti-entropy",
                                         labels=labels),
        }
        for p in status["peers"]:
            name = [p["peer"]]
            fams["queue_depth"].add_metric(name, p["queue_depth"])
            fams["acked"].add_metric(name, p["checkpoint"]["acked"])
            fams["cursor"].add_metric(name, p["checkpoint"]["cursor"])
            fams["failures"].add_metric(name, p["backoff"]["failures"])
            fams["retry_in"].add_metric(name, p["backoff"]["retry_in_s"])
            fams["dead"].add_metric(name, p["dead_letters"])
            fams["contact"].add_metric(name, p["last_contact"] or 0)
            fams["repairs"].add_metric(name, p["repairs"])
        yield from fams.values()
        tickets = GaugeMetricFamily("simpul_tickets", "Tickets by status", labels=["status"])
        for status_name, count in status["tickets_by_status"].items():
            tickets.add_metric([status_name], count)
        yield tickets
        yield GaugeMetricFamily("simpul_events", "Events in the local log", value=status["events"])


def registry_for(node) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SyncCollector(node))
    return registry


async def metrics(request: web.Request) -> web.Response:
    node = request.app["node"]
    body = await node.db(generate_latest, request.app["registry"])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
