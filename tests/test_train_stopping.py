"""Stopping training at a step boundary (saelab/train/stopping.py): a signal or a request ends
train_sae after the current step with a checkpoint of it, and a resume from that checkpoint ends
with the weights of the uninterrupted run; the CLI does it on SIGTERM (exit code 143); under
torch.distributed every rank stops after the same step."""
import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from saelab.sae_config import TopKConfig
from saelab.torch_sae import make_sae
from saelab.train import StopRequest, TrainConfig, stop_on_signals, train_sae
from saelab.train.state import load_train_state
from shard_helpers import random_shard_folder

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(os.name != "posix", reason="POSIX signals")]

ROOT = Path(__file__).resolve().parents[1]
DATA = torch.randn(400, 8, generator=torch.Generator().manual_seed(1))
SAE = TopKConfig(d_in=8, d_sae=64, k=4, k_aux=8)
CFG = TrainConfig(n_steps=30, batch_size=32, lr=3e-3, log_every=4)


def _run(seed=0, **kw):
    torch.manual_seed(seed)
    sae = make_sae(SAE)
    return sae, train_sae(sae, DATA, CFG, progress=False, **kw)


def _signal_at(step, signum=signal.SIGTERM):
    """A callback (called after history rows) that sends this process ``signum`` at ``step``."""
    return lambda done, sae: done == step and os.kill(os.getpid(), signum)


def test_sigterm_stops_after_the_step_and_a_resume_ends_where_one_run_does(tmp_path):
    full, full_result = _run()
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop, pytest.warns(UserWarning, match="stopped on SIGTERM after "
                                                 "8 of 30 steps; checkpoint .*step_00000008"):
        _, stopped = _run(checkpoint_dir=tmp_path, stop=stop, callback=_signal_at(8))
    assert stop.is_set() and stop.signum == signal.SIGTERM
    assert stopped.history.step == [4, 8]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000008.safetensors"]
    assert load_train_state(tmp_path)[1]["step"] == 8
    resumed, resumed_result = _run(seed=5, resume_from=tmp_path)  # another init: all restored
    for name, t in full.state_dict().items():
        assert torch.equal(t, resumed.state_dict()[name]), name
    assert resumed_result.history == full_result.history
    assert signal.getsignal(signal.SIGTERM) == before  # the old handler is back


@pytest.mark.parametrize("every", [5, 4])
def test_a_request_writes_the_checkpoint_of_its_step_once(every, tmp_path, monkeypatch):
    from saelab.train.state import Checkpointer

    saves = []
    original = Checkpointer.save
    monkeypatch.setattr(Checkpointer, "save",
                        lambda self, done, *a: saves.append(done) or original(self, done, *a))
    stop = threading.Event()  # any object with is_set()
    # the callback runs after the history row of step 4; the stop is asked in the same step
    with pytest.warns(UserWarning, match="after 4 of 30 steps; checkpoint .*step_00000004"):
        _, result = _run(checkpoint_dir=tmp_path, checkpoint_every=every, stop=stop,
                         callback=lambda done, sae: stop.set())
    assert result.history.step == [4]
    assert saves == [4]  # every=5: written because of the stop; every=4: not written twice
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000004.safetensors"]


def test_second_sigint_raises_keyboard_interrupt_and_handlers_are_restored():
    # Python's own SIGINT handler, as in a terminal (a pytest-xdist worker may ignore SIGINT)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with stop_on_signals((signal.SIGINT,)) as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.is_set() and stop.reason() == "SIGINT"
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler runs between bytecodes of this thread
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


def test_no_checkpoint_dir_says_so_and_a_set_stop_ends_after_the_first_step():
    stop = StopRequest()
    stop.set()
    with pytest.warns(UserWarning, match="on a request after 1 of 30 steps; no checkpoint_dir"):
        _, result = _run(stop=stop)
    assert result.history.step == [1] and result.history.tokens == [32]


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="stop must have an is_set"):
        _run(stop=True)
    for signals in (signal.SIGTERM, (99999,), ("SIGTERM",)):
        with pytest.raises(ValueError, match="signals must be a sequence"):
            with stop_on_signals(signals):
                pass
    with pytest.raises(ValueError, match="signum must be a signal number"):
        StopRequest().set("TERM")
    errors = []

    def other_thread():
        try:
            with stop_on_signals():
                pass
        except ValueError as err:
            errors.append(str(err))
    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert errors and "main thread" in errors[0]


def test_cli_on_sigterm_writes_a_checkpoint_and_exits_143(tmp_path):
    shards = random_shard_folder(tmp_path / "acts", (200, 200), 8, seed=1)
    ck = tmp_path / "ck"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "saelab.train.cli", "--shards", str(shards), "--family", "topk",
           "--k", "4", "--expansion", "4", "--steps", "1000000", "--batch-size", "32",
           "--log-every", "10", "--no-progress", "--out", str(tmp_path / "sae.safetensors"),
           "--checkpoint-dir", str(ck), "--checkpoint-every", "50"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not (ck.is_dir() and any(ck.iterdir())):  # training is under way
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped on SIGTERM after step" in err and "--resume" in err and "Traceback" not in err
    step = int(err.split("after step ")[1].split(" ")[0])
    latest = sorted(ck.iterdir())[-1]
    assert latest.name == f"step_{step:08d}.safetensors" and step < 1_000_000
    assert load_train_state(latest)[1]["step"] == step
    assert not (tmp_path / "sae.safetensors").exists()  # unfinished: the checkpoint holds it


def _dist_worker(rank, world_size, init_file, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=120))
    try:
        stop = StopRequest()
        # the callback runs on rank 0 only: only rank 0's request is set, at step 8
        _, result = _run(stop=stop, checkpoint_dir=Path(out_file).parent / "ck",
                         callback=lambda done, sae: done == 8 and stop.set())
        torch.save(result.history.step, f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
def test_under_distributed_every_rank_stops_after_the_same_step(tmp_path):
    out = tmp_path / "steps"
    mp.spawn(_dist_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2)
    assert torch.load(f"{out}.0") == torch.load(f"{out}.1") == [4, 8]
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step_00000008.safetensors"]
