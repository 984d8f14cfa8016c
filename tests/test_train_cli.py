"""The command line ``python -m saelab.train.cli`` (saelab/train/cli.py): a shard folder end to
end, a resume that matches the uninterrupted run, bad input (exit code 2, no traceback), a model +
corpus harvested on the fly, and ``torchrun --nproc_per_node 2`` matching one process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from saelab.checkpoint import load_sae
from saelab.lm.disk_cache import write_shards
from saelab.train.cli import main
from shard_helpers import random_shard_folder

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ROOT = Path(__file__).resolve().parents[1]
D_IN = 16
TRAIN = ["--family", "topk", "--k", "4", "--expansion", "4", "--steps", "20", "--batch-size", "32",
         "--lr", "3e-3", "--log-every", "5", "--dead-window-tokens", "100000", "--no-progress"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return random_shard_folder(tmp_path_factory.mktemp("acts"), (100, 80, 120, 60), D_IN, seed=1,
                               meta={"model": "saelab-tiny", "hook_name": "blocks.2.hook_resid_pre"})


def _cli(*args, torchrun=0):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={torchrun}"] if torchrun else [sys.executable])
    return subprocess.run([*launcher, "-m", "saelab.train.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def _weights(path):
    return load_sae(path).state_dict()


def test_shard_folder_end_to_end_and_resume(shards, tmp_path):
    ck = tmp_path / "ck"
    full = _cli("--shards", shards, *TRAIN, "--out", tmp_path / "a.safetensors",
                "--checkpoint-dir", ck, "--checkpoint-every", 10,
                "--history", tmp_path / "a.json", "--saelens-dir", tmp_path / "sl")
    assert full.returncode == 0, full.stderr
    assert "trained topk SAE d_in=16 d_sae=64: 20 steps" in full.stdout
    assert sorted(p.name for p in ck.iterdir()) == ["step_00000010.safetensors",
                                                    "step_00000020.safetensors"]
    assert (tmp_path / "sl" / "cfg.json").is_file()
    history = json.loads((tmp_path / "a.json").read_text())
    assert history["step"] == [5, 10, 15, 20] and history["fvu"][-1] < history["fvu"][0]
    # resume from step 10 in process: the same weights and history as the uninterrupted run
    assert main(["--shards", str(shards), *TRAIN, "--out", str(tmp_path / "b.safetensors"),
                 "--history", str(tmp_path / "b.json"),
                 "--resume", str(ck / "step_00000010.safetensors")]) == 0
    a, b = _weights(tmp_path / "a.safetensors"), _weights(tmp_path / "b.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "b.json").read_text()) == history
    # a resume with another learning rate is refused, naming the field and both values
    assert main(["--shards", str(shards), *TRAIN, "--lr", "1e-3", "--out",
                 str(tmp_path / "c.safetensors"), "--checkpoint-dir", str(ck), "--resume"]) == 2


def test_bad_input_exits_2_naming_the_argument(shards, tmp_path, capsys):
    out = ["--out", str(tmp_path / "x.safetensors")]
    cases = {("--shards", str(tmp_path / "missing")): "--shards: no folder",
             ("--shards", str(tmp_path)): "--shards: folder",  # no meta.json
             ("--shards", str(shards), "--family", "relu"): "--family must be one of",
             ("--shards", str(shards), "--d-in", "8"): "--d-in is 8 but the activations have",
             ("--shards", str(shards), "--family", "l1", "--k", "4"): "--k does not apply",
             ("--shards", str(shards), "--sae-set", "nope=1"): "--sae-set must be FIELD=VALUE",
             ("--shards", str(shards), "--k", "999"): "bad SAE settings",
             ("--shards", str(shards), "--steps", "0"): "--steps must be at least 1",
             ("--shards", str(shards), "--checkpoint-every", "5"): "--checkpoint-every needs",
             ("--shards", str(shards), "--resume"): "--resume without a value needs",
             ("--shards", str(shards), "--resume", str(tmp_path / "no")): "--resume: no checkpoint",
             ("--model", "saelab-tiny"): "--model needs --hook and --corpus"}
    mixed = tmp_path / "mixed"  # shards of two widths
    list(write_shards(mixed, {"model": "m"}, [torch.zeros(4, D_IN), torch.zeros(4, D_IN + 1)]))
    cases[("--shards", str(mixed))] = "shards have different widths [16, 17]"
    for args, message in cases.items():
        assert main([*args, *out]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
    with pytest.raises(SystemExit) as exit_:
        main(["--out", "x.safetensors"])  # neither --shards nor --model: argparse's own error
    assert exit_.value.code == 2
    with pytest.raises(TypeError, match="argv must be a list of strings"):
        main("--help")
    shown = _cli("--shards", tmp_path / "missing", *out)  # a real process: no traceback
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert "--shards: no folder" in shown.stderr


def test_help_is_readable(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--shards", "--model", "--corpus", "--checkpoint-every", "--resume", "torchrun"):
        assert flag in text


def test_model_and_corpus_harvested_on_the_fly(tmp_path):
    from saelab.lm.models import SHIPPED_DIR
    text = (SHIPPED_DIR / "heldout.txt").read_text(encoding="utf-8")[:20_000]
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    args = ["--model", "saelab-tiny", "--hook", "blocks.2.hook_resid_pre", "--corpus",
            str(tmp_path / "c.txt"), "--seq-len", "32", "--harvest-batch", "8", "--family", "l1",
            "--l1-coeff", "0.5", "--expansion", "2", "--steps", "8", "--batch-size", "128",
            "--lr", "1e-3", "--log-every", "4", "--no-progress"]
    ck = tmp_path / "ck"
    assert main([*args, "--out", str(tmp_path / "a.safetensors"), "--checkpoint-dir", str(ck),
                 "--checkpoint-every", "4"]) == 0
    assert main([*args, "--out", str(tmp_path / "b.safetensors"),
                 "--resume", str(ck / "step_00000004.safetensors")]) == 0
    a, b = _weights(tmp_path / "a.safetensors"), _weights(tmp_path / "b.safetensors")
    assert a["W_dec"].shape == (256, 128) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="needs torch.distributed with gloo")
def test_torchrun_two_processes_match_one(shards, tmp_path):
    two = _cli("--shards", shards, *TRAIN, "--out", tmp_path / "two.safetensors",
               "--checkpoint-dir", tmp_path / "ck", "--checkpoint-every", 10, torchrun=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert main(["--shards", str(shards), *TRAIN, "--out", str(tmp_path / "one.safetensors")]) == 0
    one, both = _weights(tmp_path / "one.safetensors"), _weights(tmp_path / "two.safetensors")
    for k in one:  # each rank takes rows rank::2 of the same global batches
        torch.testing.assert_close(both[k], one[k], atol=1e-5, rtol=1e-5)  # measured 2e-7
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "step_00000010.safetensors", "step_00000020.safetensors"]  # rank 0 wrote them
    # the 2-process checkpoint resumes in one process (every rank was at the same position)
    assert main(["--shards", str(shards), *TRAIN, "--out", str(tmp_path / "resumed.safetensors"),
                 "--resume", str(tmp_path / "ck" / "step_00000010.safetensors")]) == 0
    resumed = _weights(tmp_path / "resumed.safetensors")
    for k in one:
        torch.testing.assert_close(resumed[k], both[k], atol=1e-5, rtol=1e-5)  # measured 6e-8
