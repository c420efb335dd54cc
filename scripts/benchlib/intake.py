"""Intake: complaints per second through ``POST /api/v1/complaints`` on one node.

One real ``simpul run`` process (a district on SQLite, started by
node.cluster; its hub is not running, so everything filed simply queues for
it). The client is aiohttp with ``concurrency`` connections, in this process,
sending pre-built request bodies shaped like the sample complaints, each with
its own Idempotency-Key as a channel would. Every response must be 201.
"""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from benchlib.common import cpu_seconds, proc_memory
from benchlib.gen import api_body, generate


async def _fire(url: str, token: str, bodies: list[tuple[str, bytes]], concurrency: int) -> dict:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    errors: list[str] = []
    queue = iter(bodies)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for key, body in queue:
            t = time.perf_counter()
            try:
                async with session.post(url, data=body, headers={**headers, "Idempotency-Key": key}) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors.append(f"{exc.__class__.__name__}: {exc}")
            latencies.append(time.perf_counter() - t)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    pick = lambda q: round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)  # noqa: E731
    return {"seconds": elapsed, "statuses": statuses, "errors": errors[:5], "error_count": len(errors),
            "p50_ms": pick(0.5), "p99_ms": pick(0.99)}


def run(cluster, node_id: str, samples: list[dict], n: int, concurrency: int, seed: int = 5,
        prefix: str = "I") -> dict:
    """File ``n`` complaints at ``node_id`` (running); return the figures. ``prefix`` starts their
    references, which are their Idempotency-Keys: runs on one node need different ones."""
    bodies = [(c["ref"], json.dumps(api_body(c), ensure_ascii=False).encode())
              for c in generate(samples, n, seed=seed, filed_at=node_id, prefix=prefix)]
    proc = cluster.proc(node_id)
    url = f"{proc.url}/api/v1/complaints"
    token = cluster.tokens(node_id)["intake"]
    # warm up (first requests pay for imports and caches), not counted
    asyncio.run(_fire(url, token, [(f"warm-{prefix}-{i}", b) for i, (_, b) in enumerate(bodies[:50])], 8))
    cpu0, client0 = cpu_seconds(proc.popen.pid), time.process_time()
    result = asyncio.run(_fire(url, token, bodies, concurrency))
    cpu, client = cpu_seconds(proc.popen.pid) - cpu0, time.process_time() - client0
    created = result["statuses"].get(201, 0)
    return {"complaints": n, "concurrency": concurrency, "created": created,
            "seconds": round(result["seconds"], 2), "per_s": round(created / result["seconds"], 1),
            "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "statuses": result["statuses"],
            "errors": result["errors"], "error_count": result["error_count"],
            "server_cpu_s": round(cpu, 2), "server_cpu_ms_per_complaint": round(1000 * cpu / max(created, 1), 3),
            "client_cpu_ms_per_complaint": round(1000 * client / max(created, 1), 3),
            "memory_mb": proc_memory(proc.popen.pid)}
