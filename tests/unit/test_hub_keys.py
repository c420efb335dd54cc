"""The bounds on what an unverified request can make a district do (adapters.http.hub_keys), on fake time.

The transport is a fake that counts the district's reads of the hub's keys and fails them, so no key is
ever learnt and every request goes through the bounds."""
from __future__ import annotations

from types import SimpleNamespace

from adapters.http.hub_keys import SHARED_S, SPACING_S, HubKeys
from node.errors import PeerError


class Reads:
    def __init__(self):
        self.count = 0

    async def fetch_keys(self, peer):
        self.count += 1
        raise PeerError(f"{peer.node_id} is unreachable")


def district(now: list[float], role: str = "district"):
    node = SimpleNamespace(role=role, settings=SimpleNamespace(
        hub=SimpleNamespace(node_id="nasional", url="http://127.0.0.1:1")))
    reads = Reads()
    return HubKeys(node, reads, keydir=None, clock=lambda: now[0]), reads


async def test_requests_naming_one_key_share_an_attempt_until_it_expires():
    now = [1000.0]
    keys, reads = district(now)
    assert not await keys.learn_for_request("nasional#sig-9")
    now[0] += SHARED_S - 1
    assert not await keys.learn_for_request("nasional#sig-9")
    assert reads.count == 1                      # the second request shared the first one's attempt
    now[0] += 2                                  # the attempt is older than SHARED_S: a new one
    assert not await keys.learn_for_request("nasional#sig-9")
    assert reads.count == 2


async def test_a_new_attempt_starts_at_most_every_spacing_interval():
    now = [1000.0]
    keys, reads = district(now)
    await keys.learn_for_request("nasional#sig-2")
    now[0] += SPACING_S - 1
    assert not await keys.learn_for_request("nasional#sig-3")   # refused without asking the hub
    assert reads.count == 1
    now[0] += 2
    await keys.learn_for_request("nasional#sig-3")
    assert reads.count == 2


async def test_only_the_hubs_key_ids_are_looked_for_and_never_at_a_hub():
    now = [1000.0]
    keys, reads = district(now)
    assert not await keys.learn_for_request("kab-ppu#sig-1")
    assert not await keys.learn_for_request("nasional-palsu#sig-1")
    hub, hub_reads = district(now, role="hub")
    assert not await hub.learn_for_request("nasional#sig-2")
    assert reads.count == hub_reads.count == 0
