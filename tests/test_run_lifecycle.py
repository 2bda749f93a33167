"""The run lifecycle that search and training share (dmc/run_lifecycle.py), on a small classifier trained for real:
its hooks in order, the run folder's writes, the non-finite checks, exact resume and the per-rank seeds."""

import pytest
import torch
import torch.nn.functional as F

from dmc.distributed import SINGLE, Distributed
from dmc.errors import DmcError
from dmc.run_lifecycle import RunLifecycle, StepOutput, determinism_kept
from dmc.runfolder import SEARCH_RUN, RunFolder, read_history


class _Classifier:
    """A RunTask: a two-layer classifier with dropout on 24 points of two classes, 3 steps of 8 per epoch, in an
    order drawn from torch's global generator (so that exact resume needs the generators restored)."""

    restored_what = "the classifier"
    read_every = 1

    def __init__(self, lifecycle, log=None, poison=None, validate=True):
        self.lifecycle, self.poison, self.validate = lifecycle, poison, validate
        self.log = log if log is not None else []
        points = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
        labels = (points[:, 0] + points[:, 1] > 0).long()
        self.train_set, self.val_set = (points[:24], labels[:24]), [(points[24:], labels[24:])]
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                         torch.nn.Linear(8, 2))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.5, momentum=0.9)
        self.epoch, self.steps = 0, 0

    def describe(self):
        self.log.append("describe")
        return "a classifier"

    def folder_config(self):
        self.log.append("folder_config")
        return {"config": {"lr": 0.5}}

    def state(self):
        self.log.append("state")
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def begin_epoch(self, epoch):
        self.log.append(f"begin_epoch {epoch}")
        self.epoch, self.steps = epoch, 0
        self.model.train()
        x, y = self.train_set
        order = torch.randperm(len(y))
        return [(x[order[i: i + 8]], y[order[i: i + 8]]) for i in range(0, len(y), 8)], 3

    def step(self, batch):
        x, y = batch
        self.log.append("step")
        self.steps += 1
        if self.poison == (self.epoch, self.steps):
            x = x * float("nan")
        self.optimizer.zero_grad()
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        self.optimizer.step()
        return StepOutput(loss.detach(), (logits.argmax(1) == y).sum(), len(y))

    def end_epoch(self, epoch, train_loss, train_acc):
        self.log.append(f"end_epoch {epoch}")
        record = {"epoch": epoch, "lr": 0.5, "train_loss": train_loss, "train_acc": train_acc}
        if self.validate:
            record["val_loss"], record["val_acc"] = self.lifecycle.evaluate(self.model, self.val_set,
                                                                            "the validation loss")
        return record

    def record_best(self, record):
        self.log.append(f"record_best {record['epoch']}")

    def log_tensorboard(self, writer, record):
        self.log.append("log_tensorboard")
        writer.add_scalar("own/weight_norm", self.model[0].weight.norm().item(), record["epoch"])


@pytest.fixture(autouse=True)
def _global_switches():
    """seed_everything sets torch's determinism and cudnn switches: give them back after each test."""
    benchmark = torch.backends.cudnn.benchmark
    with determinism_kept():
        yield
    torch.backends.cudnn.benchmark = benchmark


class _Killed(Exception):
    pass


class _Writes(list):
    """The run folder's writes and the steps' kill-hook labels, as they happen; ``kill`` holds the writes after
    which the run stops (once each), as if killed."""

    def __init__(self):
        super().__init__()
        self.kill = []

    def written(self, label):
        self.append(label)
        if label in self.kill:
            self.kill.remove(label)
            raise _Killed(label)


@pytest.fixture
def writes(monkeypatch):
    seen = _Writes()
    monkeypatch.setattr("dmc.runfolder.written", seen.written)
    monkeypatch.setattr("dmc.run_lifecycle.written", seen.written)
    return seen


def _run(path, epochs=3, resume=False, process=SINGLE, log=None, events=None, **task):
    """A run of the classifier into ``path`` (continued from its checkpoint with ``resume``): its lifecycle
    and its task."""
    folder = RunFolder(path, SEARCH_RUN)
    if not resume:
        folder.claim()
    on_event = None if events is None else (lambda kind, **info: events.append((kind, info)))
    lifecycle = RunLifecycle(folder, process, epochs, seed=3, deterministic=True, on_event=on_event)
    classifier = lifecycle.build(lambda: _Classifier(lifecycle, log, **task))
    lifecycle.run(classifier, folder.resume_state() if resume else None)
    return lifecycle, classifier


def test_hooks_events_and_writes_come_in_the_lifecycles_order(tmp_path, writes):
    log, events = writes, []
    _run(tmp_path / "run", epochs=2, log=log, events=events, validate=False)  # no validation: every epoch is best
    epoch = lambda e: [f"begin_epoch {e}", *[x for s in range(1, 4) for x in ("step", f"step@{e}.{s}")],  # noqa: E731
                       f"end_epoch {e}", f"record_best {e}", "state", f"history.jsonl@{e}", f"best.pt@{e}",
                       f"last.pt@{e}", "log_tensorboard"]
    assert log == ["describe", "folder_config", "config.json", *epoch(0), *epoch(1)]
    assert [kind for kind, _ in events] == ["status", *(["epoch_start", "step", "step", "step", "epoch_end"] * 2)]
    assert events[0][1] == {"message": "a classifier"}
    assert events[1][1] == {"epoch": 0, "epochs": 2, "steps": 3}
    assert [info["step"] for kind, info in events if kind == "step"] == [1, 2, 3, 1, 2, 3]


def test_the_history_records_the_mean_training_loss_and_best_pt_the_best_validation_epoch(tmp_path, writes):
    log, events = writes, []
    lifecycle, _ = _run(tmp_path / "run", epochs=4, log=log, events=events)
    history = read_history(tmp_path / "run")
    steps = [info["loss"] for kind, info in events if kind == "step"]
    for record in history:
        assert record["train_loss"] == pytest.approx(sum(steps[3 * record["epoch"]: 3 * record["epoch"] + 3]) / 3)
        assert record["seconds"] > 0
    best, rising = -1.0, []
    for record in history:
        if record["val_acc"] > best:
            best = record["val_acc"]
            rising.append(record["epoch"])
    assert [int(x.split()[1]) for x in log if x.startswith("record_best")] == rising
    assert [int(x.split("@")[1]) for x in log if x.startswith("best.pt@")] == rising
    assert (lifecycle.best_epoch, lifecycle.best_val_acc) == (rising[-1], best)
    checkpoint = SEARCH_RUN.load(tmp_path / "run" / "best.pt")
    assert (checkpoint["epoch"], checkpoint["best_epoch"], checkpoint["best_val_acc"]) == (rising[-1] + 1,
                                                                                          rising[-1], best)
    assert checkpoint["world_size"] == 1 and "torch" in checkpoint["rng"]


def test_a_non_finite_training_loss_stops_the_run_and_keeps_the_last_good_epoch(tmp_path, writes):
    with pytest.raises(DmcError, match=r"the training loss became nan at epoch 1, step 2: .*last.pt keeps epoch 0"):
        _run(tmp_path / "run", poison=(1, 2))
    assert SEARCH_RUN.load(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert [r["epoch"] for r in read_history(tmp_path / "run")] == [0]


@pytest.mark.parametrize("read_every", [2, 5])
def test_metrics_read_once_per_interval_give_the_same_run(tmp_path, writes, monkeypatch, read_every):
    """A task that asks for its metrics every few steps (a captured step never waits for the host) gets the same
    history, every step's event and kill-hook label, and the non-finite check names the step itself."""
    events_each, events_batched = [], []
    _run(tmp_path / "each", events=events_each)
    monkeypatch.setattr(_Classifier, "read_every", read_every)
    _run(tmp_path / "batched", events=events_batched)
    histories = [read_history(tmp_path / name) for name in ("each", "batched")]
    for record in histories[0] + histories[1]:
        record.pop("seconds")
    assert histories[0] == histories[1]
    assert [e for e in events_each if e[0] == "step"] == [e for e in events_batched if e[0] == "step"]
    assert [w for w in writes if w.startswith("step@")] == [f"step@{e}.{s}" for e in range(3) for s in (1, 2, 3)] * 2
    with pytest.raises(DmcError, match=r"the training loss became nan at epoch 1, step 2: .*last.pt keeps epoch 0"):
        _run(tmp_path / "poisoned", poison=(1, 2))


def test_a_non_finite_validation_loss_stops_the_run_before_its_epoch_is_written(tmp_path, writes, monkeypatch):
    original = _Classifier.end_epoch

    def poisoned(self, epoch, train_loss, train_acc):
        x, y = self.val_set[0]
        self.val_set = [(x * float("nan"), y)]
        return original(self, epoch, train_loss, train_acc)

    monkeypatch.setattr(_Classifier, "end_epoch", poisoned)
    with pytest.raises(DmcError, match=r"the validation loss became nan at epoch 0 \(evaluation\): .*no epoch had"):
        _run(tmp_path / "run")
    assert not (tmp_path / "run" / "last.pt").exists() and read_history(tmp_path / "run") == []


def _same_runs(a, b):
    strip = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    same_history = strip(read_history(a)) == strip(read_history(b))
    x, y = (SEARCH_RUN.load(run / "last.pt")["model"] for run in (a, b))
    return same_history and all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize("label", ["history.jsonl@0", "best.pt@0", "last.pt@1"])
def test_a_run_stopped_after_a_write_resumes_to_the_uninterrupted_result(tmp_path, writes, label):
    _run(tmp_path / "straight")
    writes.kill.append(label)
    with pytest.raises(_Killed):
        _run(tmp_path / "run")
    _run(tmp_path / "run", resume=True)
    assert _same_runs(tmp_path / "straight", tmp_path / "run")


def test_resume_restores_the_random_generators(tmp_path, writes, monkeypatch):
    """The epochs' order and dropout draw from torch's generator: only the checkpoint's state continues them."""
    _run(tmp_path / "straight")
    writes.kill.append("last.pt@0")
    with pytest.raises(_Killed):
        _run(tmp_path / "run")
    monkeypatch.setattr(Distributed, "restore_rng_states", lambda self, state: None)
    _run(tmp_path / "run", resume=True)
    assert not _same_runs(tmp_path / "straight", tmp_path / "run")


def test_a_finished_run_resumes_to_its_end_at_once(tmp_path, writes):
    _run(tmp_path / "run", epochs=2)
    log, events = [], []
    lifecycle, _ = _run(tmp_path / "run", epochs=2, resume=True, log=log, events=events)
    assert lifecycle.epoch == 2 and not any(x.startswith("begin_epoch") for x in log)
    assert [info["message"] for _, info in events][-1].endswith("has already finished (2 of 2 epochs): nothing to "
                                                                 "continue; its result:")


class _Draw:
    """A task that draws from torch's generator as it is built (the network's initial weights do)."""

    def __init__(self):
        self.drawn = torch.rand(2)

    def describe(self):
        return "draws"


def test_each_process_reseeds_by_its_rank_once_the_task_is_built(tmp_path, writes):
    lifecycle = RunLifecycle(RunFolder(tmp_path, SEARCH_RUN), Distributed(rank=1, world_size=2), 1, seed=3,
                             deterministic=True, on_event=None)
    built = lifecycle.build(_Draw)
    assert torch.equal(built.drawn, torch.rand(2, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(torch.rand(2), torch.rand(2, generator=torch.Generator().manual_seed(3 + 7919)))


def test_tensorboard_plots_the_records_numbers_and_what_the_task_adds(tmp_path, writes):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _run(tmp_path / "run", epochs=2)
    events = EventAccumulator(str(tmp_path / "run" / "tb"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"lr", "train_loss", "train_acc", "val_loss", "val_acc",
                                             "own/weight_norm"}
    history = read_history(tmp_path / "run")
    assert [e.value for e in events.Scalars("val_loss")] == pytest.approx([r["val_loss"] for r in history])


def test_determinism_kept_gives_the_switch_back_after_an_error():
    before = torch.are_deterministic_algorithms_enabled()
    with pytest.raises(_Killed), determinism_kept():
        torch.use_deterministic_algorithms(not before)
        raise _Killed()
    assert torch.are_deterministic_algorithms_enabled() == before
