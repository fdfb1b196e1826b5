#!/usr/bin/env python3
"""Writes trainer/logging/tests/fixtures/tensorboard/python.tfevents with TensorBoard's own Python
writer (EventFileWriter + the tensorboard protos), so the Rust reader is tested on a file it
did not write. Not run by CI; the output is committed.
Setup: python3 -m venv ~/.venvs/mm1-tb && ~/.venvs/mm1-tb/bin/pip install tensorboard
Usage: ~/.venvs/mm1-tb/bin/python scripts/make_tensorboard_fixture.py"""
import glob
import math
import os
import shutil
import tempfile

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.text.summary_v2 import text_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter

OUT = os.path.join(os.path.dirname(__file__), "..", "trainer", "logging", "tests", "fixtures", "tensorboard")


def main():
    tmp = tempfile.mkdtemp()
    w = EventFileWriter(tmp)
    for step in range(20):
        loss = 6.0 * math.exp(-0.1 * step) + 0.25
        values = [Summary.Value(tag="loss", simple_value=loss),
                  Summary.Value(tag="lr", simple_value=1e-3 * (step + 1) / 20)]
        w.add_event(Event(step=step, wall_time=1.7e9 + step, summary=Summary(value=values)))
    w.add_event(Event(step=0, wall_time=1.7e9, summary=text_pb("config", "[train]\nsteps = 20")))
    w.close()
    os.makedirs(OUT, exist_ok=True)
    (src,) = glob.glob(os.path.join(tmp, "events.out.tfevents.*"))
    shutil.copy(src, os.path.join(OUT, "python.tfevents"))
    shutil.rmtree(tmp)
    print("wrote", os.path.join(OUT, "python.tfevents"))


if __name__ == "__main__":
    main()
