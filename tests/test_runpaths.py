"""`gankit.runpaths.RunDir`: every file a training run writes is one of its
names, and a run or a checkpoint file inside it resolves to the same run."""
from __future__ import annotations

import pytest

from gankit.config import TrainConfig
from gankit.errors import UsageError
from gankit.runpaths import RunDir


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> RunDir:
    from gankit.data import write_dataset
    from gankit.train.loop import train

    from conftest import blobs

    tmp = tmp_path_factory.mktemp("runpaths")
    data = write_dataset(tmp / "blobs", blobs(64), source="test-blobs").path
    cfg = TrainConfig(data=str(data), out=str(tmp / "runs"), name="r", model="dcgan", width_g=8, width_d=8, latent=16,
                      batch=16, epochs=1, log_every=2, num_samples=4, threads=1)
    return RunDir(train(cfg))


def test_every_entry_of_a_run_is_a_name_of_rundir(run):
    names = {v for k, v in vars(RunDir).items() if k.isupper() and isinstance(v, str)}
    assert {p.name for p in run.path.iterdir()} <= names
    for path in (run.config, run.log, run.metrics, run.summary, run.report, run.gif, run.samples, run.plots,
                 run.tensorboard, run.frames, run.epoch_samples(1)):
        assert path.exists(), path
    assert run.is_run() and not RunDir(run.samples).is_run()


def test_a_checkpoint_file_resolves_to_its_run_and_checkpoints_are_picked_by_name(run):
    last = run.latest_checkpoint()
    assert last is not None and RunDir.of(last).path == run.path and RunDir.of(run.path).path == run.path
    assert run.pick_checkpoint("last") == last == run.pick_checkpoint(None)  # no best.pt: the newest
    assert run.pick_checkpoint(last.name) == last
    with pytest.raises(UsageError, match="has no best.pt"):
        run.pick_checkpoint("best")
    with pytest.raises(UsageError, match="no such checkpoint nope.pt"):
        run.pick_checkpoint("nope.pt")
