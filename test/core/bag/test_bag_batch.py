"""`gsvnet-bag batch` on a local Ray instance (2 CPUs, shared by this module's tests): failures stay
alone, reruns skip finished work, a killed worker's task is retried, SIGTERM leaves nothing
unfinished, and outputs equal single-process `gsvnet-bag segment`."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from gsvnet_ros.bag import BagReader, ConvertOptions, SourceError, convert
from gsvnet_ros.bag.batch import (BATCH_REPORT, BATCH_SUMMARY, RAY_MISSING, STAGING_DIR,
                                  BatchOptions, run_batch)
from gsvnet_ros.bag.chunks import plan_chunks
from gsvnet_ros.bag.manifest import MANIFEST_NAME, Manifest, input_fingerprint
from gsvnet_ros.bag.recordings import find_recordings
from gsvnet_ros.bag.typestore import stamp_to_ns
from gsvnet_ros.cli.bag import main
from gsvnet_ros.codec import decode_image
from gsvnet_ros.metrics import DistanceConfusion

from bag_helpers import REPO, write_sequence

CONFIG = REPO / "config" / "swiftnet_r18.yaml"  # shipped weights: the same model in every process
MODEL_FLAGS = ["--config", str(CONFIG), "--backend", "torch", "--device", "cpu",
               "--keyframe-interval", "3"]
OUT_TOPICS = ["/segmentation_node/class_mask", "/segmentation_node/color_mask",
              "/segmentation_node/info"]


def _make_bag(root, name, frames, size=(128, 64), seed=0):
    write_sequence(root / f"{name}_src", snippets=1, frames=tuple(range(frames)), size=size,
                   seed=seed)
    convert(root / f"{name}_src", root / "bags" / name, ConvertOptions(progress=False))
    shutil.rmtree(root / f"{name}_src")
    return root / "bags" / name


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """bags/: three tiny good recordings (9-12 frames, dense labels) and one truncated one."""
    root = tmp_path_factory.mktemp("batch")
    good = [_make_bag(root, f"rec{i}", 9 + i, seed=i) for i in range(3)]
    bad = root / "bags" / "broken"
    shutil.copytree(good[0], bad)
    storage = next(bad.glob("*.db3"))
    storage.write_bytes(storage.read_bytes()[: storage.stat().st_size // 3])
    return root, good, bad


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray instance for the module; batches run in-process reuse it, subprocesses join
    it with --ray-address."""
    ray = pytest.importorskip("ray")
    torch = pytest.importorskip("torch")
    import logging

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the single-process reference runs like a 1-thread worker
    environ, sigterm = dict(os.environ), signal.getsignal(signal.SIGTERM)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, object_store_memory=100 * 2**20)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        torch.set_num_threads(threads)
        # ray.init sets RAY_* variables and a SIGTERM handler in this process: later tests (and
        # the processes they start) must not inherit them
        os.environ.clear()
        os.environ.update(environ)
        signal.signal(signal.SIGTERM, sigterm)


@pytest.fixture(scope="module")
def first_run(inputs, ray_address, tmp_path_factory):
    """`gsvnet-bag batch bags/ --out OUT` on 2 workers x 1 thread, no chunking, and its rerun."""
    root, _, _ = inputs
    out = tmp_path_factory.mktemp("batch_out") / "out"
    argv = ["batch", str(root / "bags"), "--out", str(out), "--workers", "2", "--threads", "1",
            "--chunk-seconds", "0", "--quiet", *MODEL_FLAGS]
    code = main(argv)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")
              if p.name not in (BATCH_REPORT, BATCH_SUMMARY)}
    report = json.loads((out / BATCH_REPORT).read_text())
    summary = (out / BATCH_SUMMARY).read_text()
    rerun_code = main(argv)
    rerun = json.loads((out / BATCH_REPORT).read_text())
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*")
             if p.name not in (BATCH_REPORT, BATCH_SUMMARY)}
    return {"out": out, "code": code, "report": report, "summary": summary,
            "rerun_code": rerun_code, "rerun": rerun, "before": before, "after": after}


def _messages(bag, topics):
    with BagReader(bag) as reader:
        return [(m.topic, m.timestamp, m.msg) for m in reader.messages(topics)]


def _leftovers(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")
                  if ".partial" in p.name or STAGING_DIR in p.parts or p.name.endswith(".tmp"))


def _row(report, name):
    return next(r for r in report["recordings"] if r["name"] == name)


def test_a_corrupt_recording_fails_alone_with_its_error_and_a_nonzero_exit(first_run, inputs):
    out, report = first_run["out"], first_run["report"]
    assert first_run["code"] == 1
    assert report["totals"] == {**report["totals"], "recordings": 4, "done": 3, "failed": 1,
                                "skipped": 0, "interrupted": 0}
    broken = _row(report, "broken")
    assert broken["status"] == "failed" and "corrupt" in broken["error"]
    assert "\n" not in broken["error"] and "Traceback" not in broken["error"]
    assert broken["error"] in first_run["summary"]
    assert not (out / "broken").exists() and not (out / "broken.report.json").exists()
    for name in ("rec0", "rec1", "rec2"):
        row = _row(report, name)
        assert row["status"] == "done" and row["frames"] == 9 + int(name[-1])
        assert row["attempts"] == 1 and row["chunks"] == 1
        assert row["average_miou"] is not None and set(row["per_distance_miou"]) == {"0", "1", "2"}
        assert (out / name / "metadata.yaml").is_file() and (out / f"{name}.report.json").is_file()
    assert report["ray"]["workers"] == 2 and report["ray"]["threads_per_worker"] == 1
    assert _leftovers(out) == []


def test_a_rerun_skips_finished_recordings_and_touches_none_of_their_files(first_run):
    rerun = first_run["rerun"]
    assert first_run["rerun_code"] == 1  # the corrupt one is tried again and fails again
    assert [(r["name"], r["status"]) for r in rerun["recordings"]] == \
        [("broken", "failed"), ("rec0", "skipped"), ("rec1", "skipped"), ("rec2", "skipped")]
    assert first_run["after"] == first_run["before"]  # same files, same mtimes (manifest too)
    assert _row(rerun, "rec1")["frames"] == 10  # the summary still shows what the outputs hold
    assert rerun["totals"]["frames_segmented"] == 0


def test_outputs_equal_single_process_segment_byte_for_byte(first_run, inputs, tmp_path):
    _, good, _ = inputs
    out = first_run["out"]
    bag = good[1]
    assert main(["segment", str(bag), str(tmp_path / "ref"), "--report", str(tmp_path / "r.json"),
                 "--quiet", *MODEL_FLAGS]) == 0
    ref = _messages(tmp_path / "ref", OUT_TOPICS)
    got = _messages(out / "rec1", OUT_TOPICS)
    assert len(got) == len(ref) == 30
    for (t1, s1, m1), (t2, s2, m2) in zip(got, ref):
        assert (t1, s1) == (t2, s2)
        if t1.endswith("info"):
            fields = ("frame_index", "is_keyframe", "frames_since_keyframe", "keyframe_reason",
                      "model_name", "backend")
            assert [getattr(m1, f) for f in fields] == [getattr(m2, f) for f in fields]
        else:
            assert (m1.encoding, m1.width, m1.height) == (m2.encoding, m2.width, m2.height)
            assert bytes(m1.data) == bytes(m2.data)
    mine = json.loads((out / "rec1.report.json").read_text())
    theirs = json.loads((tmp_path / "r.json").read_text())
    for key in ("bag", "image_topic", "frames", "keyframes", "keyframe_interval", "model_name",
                "backend", "accuracy"):
        assert mine[key] == theirs[key], key
    assert set(mine) == set(theirs)  # the same report, written the same way


def test_a_long_recording_is_split_into_chunks_that_start_with_keyframes(inputs, ray_address,
                                                                          tmp_path):
    _, good, _ = inputs
    bag = good[2]  # 11 frames at 17 frames/s: 0.59 s
    windows = plan_chunks(bag, 0.2)
    assert len(windows) == 3 and windows[0][0] is None and windows[-1][1] is None
    result = run_batch([bag], BatchOptions(
        out_dir=tmp_path / "out", config=CONFIG, backend="torch", device="cpu",
        keyframe_interval=3, chunk_seconds=0.2, workers=2, progress=False))
    assert result.exit_code == 0
    report = json.loads((tmp_path / "out" / "rec2.report.json").read_text())
    assert [c["frames"] for c in report["chunks"]] == [4, 3, 4]  # cuts at 196 and 392 ms
    infos = [m for _, _, m in _messages(tmp_path / "out" / "rec2", ["/segmentation_node/info"])]
    masks = [m for _, _, m in _messages(tmp_path / "out" / "rec2",
                                        ["/segmentation_node/class_mask"])]
    assert [i.keyframe_reason for i in infos if i.is_keyframe] == \
        ["first", "interval", "reset", "reset", "interval"]
    assert [i.frame_index for i in infos] == [0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3]
    # the merged accuracy is what the merged masks score against the ground truth
    truth = {stamp_to_ns(m.header.stamp): m for _, _, m in _messages(bag, ["/camera/labels"])}
    direct = DistanceConfusion()
    for info, mask in zip(infos, masks):
        gt = decode_image(truth[stamp_to_ns(mask.header.stamp)])[:, :, 0]
        direct.update(decode_image(mask)[:, :, 0], gt, int(info.frames_since_keyframe))
    expected = direct.summary()
    assert report["frames"] == 11 and report["keyframes"] == 5
    assert report["accuracy"]["average_miou"] == pytest.approx(expected["average_miou"])
    assert report["accuracy"]["per_distance_miou"] == pytest.approx(
        {str(k): v for k, v in expected["per_distance_miou"].items()})
    assert _leftovers(tmp_path / "out") == []


def test_a_killed_worker_has_its_task_retried_and_the_recording_completes(ray_address, tmp_path):
    bag = _make_bag(tmp_path, "long", 40, size=(256, 128), seed=7)
    killed = []

    def on_event(kind, info):
        if kind == "progress" and not killed:
            for task in info["running"]:
                if task["frames"] >= 1 and task["pid"]:
                    os.kill(task["pid"], signal.SIGKILL)
                    killed.append(task)

    result = run_batch([bag], BatchOptions(
        out_dir=tmp_path / "out", config=CONFIG, backend="torch", device="cpu",
        keyframe_interval=3, chunk_seconds=0, workers=2, retries=1, progress=False),
        on_event=on_event)
    assert killed, "the worker finished before it could be killed: make the recording longer"
    row = _row(result.report, "long")
    assert result.exit_code == 0 and row["status"] == "done" and row["frames"] == 40, row["error"]
    assert row["attempts"] == 2 and row["retried_after_worker_death"] == 1
    assert len(row["workers"]) == 1 and not row["workers"][0].endswith(f":{killed[0]['pid']}")
    assert len(_messages(tmp_path / "out" / "long", ["/segmentation_node/class_mask"])) == 40
    assert _leftovers(tmp_path / "out") == []


def test_sigterm_stops_a_batch_process_keeping_finished_outputs_only(inputs, ray_address,
                                                                     tmp_path):
    _, good, _ = inputs
    long_bag = _make_bag(tmp_path, "long", 400, seed=3)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "gsvnet_ros.cli.bag", "batch", str(good[0]), str(long_bag),
         "--out", str(out), "--ray-address", ray_address, "--workers", "2", "--chunk-seconds",
         "0", "--quiet", *MODEL_FLAGS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not ((out / "long.partial").exists() and (out / "rec0").exists()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the batch never started writing"
            time.sleep(0.05)
        time.sleep(0.3)
        assert process.poll() is None, "the batch finished before the signal: make it longer"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == \
        "gsvnet-bag: interrupted (SIGTERM); finished recordings kept, unfinished ones removed"
    assert "Traceback" not in stdout + stderr
    assert _leftovers(out) == []
    assert not (out / "long").exists() and not (out / "long.report.json").exists()
    assert (out / "rec0" / "metadata.yaml").is_file() and (out / "rec0.report.json").is_file()
    report = json.loads((out / BATCH_REPORT).read_text())
    assert [(r["name"], r["status"]) for r in report["recordings"]] == \
        [("rec0", "done"), ("long", "interrupted")]
    assert set(json.loads((out / MANIFEST_NAME).read_text())["recordings"]) == {"rec0"}


# ---------------------------------------------------------------- without Ray

def test_recordings_are_found_recursively_in_lists_and_named_uniquely(tmp_path):
    for folder in ("a/day1/drive", "a/day2/drive", "b/drive", "out/old"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "metadata.yaml").write_text("x")
    (tmp_path / "a" / "day1" / "cam.mp4").write_bytes(b"")
    (tmp_path / "b" / "notes.md").write_text("not a recording")
    (tmp_path / "list.txt").write_text("# inputs\nb/drive\nclip.avi  # a video\n\na/day1/drive\n")
    (tmp_path / "clip.avi").write_bytes(b"")
    found = find_recordings([tmp_path / "a", tmp_path / "list.txt", tmp_path],
                            exclude=[tmp_path / "out"])
    assert [(r.name, r.kind) for r in found] == [
        ("day1__cam", "video"), ("day1__drive", "bag"), ("day2__drive", "bag"),
        ("drive", "bag"), ("clip", "video")]
    assert all(r.source.is_absolute() for r in found)
    assert [r.name for r in find_recordings([tmp_path / "a/day1/drive", tmp_path / "b/drive"])] \
        == ["drive", "drive-2"]
    with pytest.raises(SourceError, match="does not exist"):
        find_recordings([tmp_path / "nope"])
    with pytest.raises(SourceError, match="no recordings under"):
        find_recordings([tmp_path / "out"], exclude=[tmp_path / "out" / "old"])


def test_the_manifest_notices_changed_inputs_settings_and_outputs(inputs, tmp_path):
    _, good, _ = inputs
    bag = tmp_path / "bag"
    shutil.copytree(good[0], bag)
    (rec,) = find_recordings([bag])
    fingerprint = input_fingerprint(rec)
    assert input_fingerprint(rec, mode="sha256") != fingerprint
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "bag").mkdir()
    (tmp_path / "out" / "bag" / "x.db3").write_bytes(b"12345")
    manifest = Manifest(tmp_path / "out")
    manifest.record(rec, fingerprint, "settings", [tmp_path / "out" / "bag"])
    again = Manifest(tmp_path / "out")
    assert again.is_complete("bag", fingerprint, "settings")
    assert not again.is_complete("bag", fingerprint, "other settings")
    os.utime(bag / "metadata.yaml", ns=(1, 1))
    assert not again.is_complete("bag", input_fingerprint(rec), "settings")
    (tmp_path / "out" / "bag" / "x.db3").write_bytes(b"1234")  # a truncated output
    assert not again.is_complete("bag", fingerprint, "settings")


def test_without_ray_batch_says_in_one_line_how_to_install_it(inputs, tmp_path):
    _, good, _ = inputs
    code = ("import sys; sys.modules['ray'] = None; sys.modules['torch'] = None\n"
            "from gsvnet_ros.cli.bag import main\n"
            f"sys.exit(main(['batch', {str(good[0])!r}, '--out', {str(tmp_path / 'o')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"gsvnet-bag: error: {RAY_MISSING}\n"
    assert "pip install" in RAY_MISSING and not (tmp_path / "o").exists()


def test_bad_batch_settings_are_one_line_usage_errors(inputs, tmp_path, capsys):
    _, good, _ = inputs
    assert main(["batch", str(good[0]), "--out", str(tmp_path / "o"), "--threads", "0"]) == 2
    assert "--threads 0" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["batch", str(good[0]), "--out", str(tmp_path / "o"), "--keyframe-interval",
                 "0"]) == 2
    assert "keyframe_interval" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []  # nothing was made
