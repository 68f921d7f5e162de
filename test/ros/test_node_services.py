"""~/reset (std_srvs/Trigger) and ~/enable (std_srvs/SetBool)."""
from node_harness import NS, image_msg, scene

PERIOD = 50_000_000


def test_reset_forces_a_keyframe_on_every_stream(harness_info, ros_info):
    h = harness_info(subscribe=("info",), overrides={"keyframe_interval": 10})
    for i in range(3):
        h.step(image_msg(scene(shift=i), frame_id="a", stamp_ns=NS + i * PERIOD))
        h.step(image_msg(scene(shift=i), frame_id="b", stamp_ns=NS + i * PERIOD))
    Trigger = ros_info.mods["std_srvs.srv"].Trigger
    response = h.call("reset", Trigger.Request())
    assert response.success and "2 stream" in response.message
    h.step(image_msg(scene(shift=3), frame_id="a", stamp_ns=NS + 3 * PERIOD))
    h.step(image_msg(scene(shift=3), frame_id="b", stamp_ns=NS + 3 * PERIOD))
    last = h.received["info"][-2:]
    assert [(m.is_keyframe, m.keyframe_reason, m.frame_index) for m in last] == \
        [(True, "reset", 0), (True, "reset", 0)]


def test_enable_false_stops_processing_and_true_resumes_with_a_keyframe(harness_info, ros_info):
    h = harness_info(subscribe=("info", "class_mask"))
    SetBool = ros_info.mods["std_srvs.srv"].SetBool
    h.step(image_msg(scene(), stamp_ns=NS))
    h.step(image_msg(scene(shift=1), stamp_ns=NS + PERIOD))
    off = h.call("enable", SetBool.Request(data=False))
    assert off.success and off.message == "disabled"
    assert h.node.get_parameter("enabled").value is False
    assert not h.step(image_msg(scene(shift=2), stamp_ns=NS + 2 * PERIOD))  # nothing to process
    assert len(h.received["class_mask"]) == 2
    on = h.call("enable", SetBool.Request(data=True))
    assert on.success and on.message == "enabled"
    h.step(image_msg(scene(shift=3), stamp_ns=NS + 3 * PERIOD))
    assert h.received["info"][-1].is_keyframe and h.received["info"][-1].keyframe_reason == "reset"
    assert h.node.stats.snapshot()["frames_skipped_disabled"] == 1


def test_disabling_drops_a_frame_waiting_in_the_slot(harness, ros):
    h = harness(subscribe=("class_mask",))
    h.send(image_msg(scene(), stamp_ns=NS))  # decoded and waiting, not yet processed
    SetBool = ros.mods["std_srvs.srv"].SetBool
    h.call("enable", SetBool.Request(data=False))
    assert not h.node.process_pending()
    assert h.received["class_mask"] == []


def test_an_error_inside_a_service_is_answered_counted_and_the_node_goes_on(harness, ros,
                                                                             monkeypatch):
    h = harness(subscribe=("class_mask",))
    h.step(image_msg(scene(), stamp_ns=NS))
    (stream,) = h.node._streams.values()

    def broken_reset():
        raise RuntimeError("injected")

    monkeypatch.setattr(stream.segmenter, "reset", broken_reset)
    Trigger = ros.mods["std_srvs.srv"].Trigger
    response = h.call("reset", Trigger.Request())
    assert not response.success
    assert response.message == "~/reset failed: RuntimeError: injected"
    assert h.node.stats.snapshot()["callback_errors"] == 1
    assert h.step(image_msg(scene(shift=1), stamp_ns=NS + PERIOD))
    assert len(h.received["class_mask"]) == 2
