"""The event recorder never gets in the way: it queues without blocking, bounds what waits, drops what fails.

What the events say and where ``kubectl get events`` shows them is tested with the deployed
gateway in ``tests/test_least_privilege_events.py``; here the recorder alone, over the
in-memory simulated cluster.
"""

from __future__ import annotations

from fakes.memory import MemoryCluster
from fakes.state.store import Store
from gateway.cluster.events import MESSAGE_LIMIT, QUEUE_LIMIT, WARNING, EventRecorder, ObjectRef, clean_message
from gateway.cluster.interface import ServiceUnavailable

POD = ObjectRef("Pod", "team-a", "alice-1234", uid="0f3c")


def test_a_message_is_one_line_without_credentials_and_bounded() -> None:
    said = clean_message("launch failed: token=abc123 password: hunter2&x\nTraceback (most recent call last):")
    assert said == "launch failed: token=[hidden] password:[hidden]&x"
    assert len(clean_message("x" * 5000)) == MESSAGE_LIMIT


async def test_events_beyond_the_queue_are_dropped_and_counted_never_waited_for() -> None:
    admin = MemoryCluster(Store())
    await admin.create("namespaces", {"metadata": {"name": "team-a"}})
    dropped: list[int] = []
    recorder = EventRecorder(admin, instance="gateway-0", on_dropped=lambda: dropped.append(1))
    for n in range(QUEUE_LIMIT + 3):  # nothing is written yet: the recorder has not started
        recorder.record(POD, WARNING, "KernelRestarting", f"restarting ({n})")
    assert len(dropped) == 3
    await recorder.start()
    await recorder.flush()
    await recorder.stop()
    written = (await admin.list("events", namespace="team-a"))["items"]
    assert len(written) == QUEUE_LIMIT
    event = written[0]
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "team-a",
                                       "name": "alice-1234", "uid": "0f3c"}
    assert event["source"] == {"component": "kernelgate", "host": "gateway-0"}
    assert event["count"] == 1 and event["firstTimestamp"] == event["lastTimestamp"]
    assert event["metadata"]["name"].startswith("alice-1234.")
    await admin.close()


async def test_a_failing_api_costs_the_caller_nothing() -> None:
    store = Store()
    admin = MemoryCluster(store)
    store.faults.inject("create", "events", error=ServiceUnavailable("etcd is down"))
    dropped: list[int] = []
    recorder = EventRecorder(admin, on_dropped=lambda: dropped.append(1))
    await recorder.start()
    recorder.record(POD, WARNING, "PodFailed", "no kernel today")
    recorder.record(POD, WARNING, "PodFailed", "no kernel tomorrow")
    await recorder.flush()
    await recorder.stop()
    assert len(dropped) == 2
    await admin.close()
