"""Write test/fixtures/tensorboard/: a TensorBoard event file made with the tensorboard package's own
protobufs (tensorboard.compat.proto) and record writer (tensorboard.summary.writer.record_writer),
and events.json listing what it holds. The TypeScript tests read the file back and check that our
encoder writes the same bytes for the same events.

Also, for a training run (by hand): `tools/tensorboard_fixture.py --check RUN_DIR` reads the run's
event file with TensorBoard's EventAccumulator and compares every scalar with metrics.jsonl.

    .venv/bin/pip install tensorboard      # no TensorFlow needed
    .venv/bin/python tools/tensorboard_fixture.py
"""

import glob
import io
import json
import math
import os
import pathlib
import struct
import sys

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

OUT = pathlib.Path(__file__).resolve().parent.parent / "test" / "fixtures" / "tensorboard"

EVENTS = [
    {"step": 1, "wall_time": 1700000000.25, "scalars": {"train/loss": 10.375, "train/learning_rate": 1e-6}},
    {"step": 10, "wall_time": 1700000012.5, "scalars": {"train/loss": 7.25, "train/learning_rate": 0.003, "val/loss": 7.5}},
    {"step": 300, "wall_time": 1700000300.0, "scalars": {"train/loss": 4.1, "eval/arc_easy/acc_norm": 0.3125}},
]


def make_fixture() -> None:
    buf = io.BytesIO()
    w = RecordWriter(buf)
    w.write(event_pb2.Event(wall_time=1700000000.0, file_version="brain.Event:2").SerializeToString())
    for e in EVENTS:
        values = [summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in e["scalars"].items()]
        ev = event_pb2.Event(wall_time=e["wall_time"], step=e["step"], summary=summary_pb2.Summary(value=values))
        w.write(ev.SerializeToString())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "events.out.tfevents.1700000000.fixture").write_bytes(buf.getvalue())
    (OUT / "events.json").write_text(json.dumps({"file_version": "brain.Event:2", "file_version_wall_time": 1700000000.0, "events": EVENTS}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(buf.getvalue())} bytes of events)")


def check_run(run_dir: str) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))
    assert len(files) == 1, f"expected one event file in {run_dir}, found {files}"
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    got = {t: {e.step: e.value for e in acc.Scalars(t)} for t in tags}
    names = {"loss": "train/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm", "tokens": "train/tokens",
             "tokens_per_s": "train/tokens_per_s", "val_loss": "val/loss"}
    n = 0
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            want = {names[k]: v for k, v in m.items() if k in names}
            for task, r in m.get("eval", {}).items():
                want.update({f"eval/{task}/{k}": v for k, v in r.items() if not k.endswith("_stderr") and k != "n"})
            for tag, v in want.items():
                f32 = struct.unpack("<f", struct.pack("<f", v))[0] if math.isfinite(v) else v
                assert got[tag][m["step"]] == f32, (tag, m["step"], got[tag][m["step"]], v)
                n += 1
    steps = sorted({s for t in got.values() for s in t})
    print(f"{run_dir}: {len(tags)} tags, {len(steps)} steps, {n} scalars equal to metrics.jsonl (float32)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check_run(sys.argv[2])
    else:
        make_fixture()
