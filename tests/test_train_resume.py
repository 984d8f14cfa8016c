"""Resumable training (saelab/train/state.py, saelab/train/streams.py): 2N steps in one run give
the same weights, history and counters as N steps, a checkpoint, a resume and N more; a
checkpoint from other settings is refused naming the field, both values and the file."""
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from saelab.checkpoint import save_sae
from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                               MatryoshkaConfig, TopKConfig)
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, train_sae
from saelab.train.data import ShuffledBatches
from saelab.train.state import RESUME_MAY_DIFFER, latest_checkpoint, load_train_state
from saelab.train.streams import ChunkStream, shard_folder_info, shard_stream
from shard_helpers import random_shard_folder

pytestmark = pytest.mark.usefixtures("one_thread")

D_IN = 8
DATA = torch.randn(300, D_IN, generator=torch.Generator().manual_seed(1))
SAES = {"topk": TopKConfig(d_in=D_IN, d_sae=64, k=4, k_aux=8),  # sparse path, AuxK
        "l1": L1Config(d_in=D_IN, d_sae=32, l1_coeff=30.0)}  # strong: latents die, resampled
CFGS = {"topk": TrainConfig(n_steps=24, batch_size=32, lr=3e-3, log_every=5),
        "l1": TrainConfig(n_steps=24, batch_size=32, lr=3e-2, log_every=5, resample_every=5,
                          dead_window_tokens=64, resample_pool=64)}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """A disk-cache folder of 4 shards of unequal sizes (batches cross shard boundaries)."""
    return random_shard_folder(tmp_path_factory.mktemp("shards"), (70, 37, 91, 40), D_IN, seed=2)


def _data(kind, folder, batch_size=32):
    return DATA if kind == "tensor" else shard_stream(folder, batch_size, seed=3)


def _run(family, data, cfg=None, seed=0, **kw):
    torch.manual_seed(seed)
    sae = make_sae(SAES[family])
    result = train_sae(sae, data, cfg or CFGS[family], progress=False, **kw)
    return sae, result


@pytest.mark.parametrize("kind", ["tensor", "shards"])
@pytest.mark.parametrize("family", ["topk", "l1"])
def test_n_plus_n_steps_with_a_resume_equal_2n_in_one_go(family, kind, shards, tmp_path):
    one, r1 = _run(family, _data(kind, shards), checkpoint_dir=tmp_path, checkpoint_every=12)
    assert sorted(os.listdir(tmp_path)) == [f"step_{s:08d}.safetensors" for s in (12, 24)]
    # another init seed: every weight must come from the checkpoint
    two, r2 = _run(family, _data(kind, shards), seed=5,
                   resume_from=tmp_path / "step_00000012.safetensors")
    for name, t in one.state_dict().items():
        assert torch.equal(t, two.state_dict()[name]), name  # exact, not just close
    assert r1.history == r2.history  # the window straddling the checkpoint included
    assert torch.equal(r1.tokens_since_fired, r2.tokens_since_fired)
    assert r1.resampled == r2.resampled
    if family == "l1" and kind == "tensor":
        assert [s for s, _ in r1.resampled] == [10, 15]  # before and after the checkpoint


@pytest.mark.parametrize("sae_cfg", [BatchTopKConfig(d_in=D_IN, d_sae=64, k=4, k_aux=8),
                                     JumpReLUConfig(d_in=D_IN, d_sae=32),
                                     GatedConfig(d_in=D_IN, d_sae=32),
                                     MatryoshkaConfig(d_in=D_IN, d_sae=64, k=4, k_aux=8)],
                         ids=lambda c: c.family)
def test_every_other_family_resumes_exactly(sae_cfg, tmp_path):
    """BatchTopK's threshold buffer and JumpReLU's threshold parameter are in the checkpoint too."""
    weights = []
    for seed, kw in ((0, dict(checkpoint_dir=tmp_path, checkpoint_every=12)),
                     (5, dict(resume_from=tmp_path / "step_00000012.safetensors"))):
        torch.manual_seed(seed)
        sae = make_sae(sae_cfg)
        train_sae(sae, DATA, CFGS["topk"], progress=False, **kw)
        weights.append(sae.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_tensor_data_keeps_the_batch_order_of_the_plain_generator():
    """The committed chapter outputs depend on this order: one randperm per epoch, drawn lazily."""
    def plain(data, bs, g):
        while True:
            order = torch.randperm(data.shape[0], generator=g)
            for start in range(0, data.shape[0] - bs + 1, bs):
                yield data[order[start:start + bs]]
    a, b = plain(DATA, 70, torch.Generator().manual_seed(4)), ShuffledBatches(
        DATA, 70, torch.Generator().manual_seed(4))
    for _ in range(13):
        assert torch.equal(next(a), next(b))


def test_a_checkpoint_holds_what_a_resume_needs(tmp_path):
    _run("topk", DATA, checkpoint_dir=tmp_path, checkpoint_every=10)
    assert latest_checkpoint(tmp_path).name == "step_00000024.safetensors"
    assert not list(tmp_path.glob("*.tmp"))  # written under a temporary name, then renamed
    tensors, meta = load_train_state(tmp_path / "step_00000010.safetensors")
    assert {"sae.W_enc", "opt.0.exp_avg", "opt.0.exp_avg_sq", "guard.W_dec", "tracker",
            "window", "rng.g", "rng.torch", "data.order"} <= set(tensors)
    assert meta["step"] == 10 and meta["tokens"] == 320 and meta["family"] == "topk"
    assert meta["train_config"]["lr"] == 3e-3 and meta["data"]["start"] == 32  # 9 batches per epoch
    assert meta["history"]["step"] == [5, 10]


def test_extending_n_steps_continues_the_run(tmp_path):
    _run("topk", DATA, checkpoint_dir=tmp_path)  # checkpoint_every=0: after the last step only
    assert [p.name for p in tmp_path.iterdir()] == ["step_00000024.safetensors"]
    longer = TrainConfig(**{**CFGS["topk"].__dict__, "n_steps": 30, "log_every": 6})
    _, result = _run("topk", DATA, cfg=longer, resume_from=tmp_path)
    assert result.history.step[:4] == [5, 10, 15, 20] and result.history.step[-1] == 30
    assert result.history.tokens[-1] == 30 * 32
    assert {"n_steps", "log_every"} <= set(RESUME_MAY_DIFFER)


@pytest.mark.parametrize("field, value", [("lr", 1e-3), ("seed", 1), ("batch_size", 16)])
def test_a_checkpoint_from_other_settings_is_refused(tmp_path, field, value):
    _run("topk", DATA, checkpoint_dir=tmp_path, checkpoint_every=12)
    other = TrainConfig(**{**CFGS["topk"].__dict__, field: value})
    path = tmp_path / "step_00000012.safetensors"
    with pytest.raises(ValueError) as err:
        _run("topk", DATA, cfg=other, resume_from=path)
    saved = getattr(CFGS["topk"], field)
    for part in (f"cfg.{field}", repr(saved), repr(value), str(path)):
        assert part in str(err.value)


def test_another_sae_or_data_or_too_few_steps_is_refused(tmp_path, shards):
    _run("topk", DATA, checkpoint_dir=tmp_path, checkpoint_every=12)
    path = tmp_path / "step_00000012.safetensors"
    torch.manual_seed(0)
    wider = make_sae(TopKConfig(d_in=D_IN, d_sae=64, k=5, k_aux=8))
    with pytest.raises(ValueError, match=r"sae.cfg.k is 4 in the checkpoint but 5"):
        train_sae(wider, DATA, CFGS["topk"], progress=False, resume_from=path)
    with pytest.raises(ValueError, match="holds a topk SAE; this run trains a l1"):
        _run("l1", DATA, cfg=CFGS["topk"], resume_from=path)
    with pytest.raises(ValueError, match=r"data of shape \[300, 8\]; got data of shape \[200, 8\]"):
        _run("topk", DATA[:200], resume_from=path)
    with pytest.raises(ValueError, match="plain iterable cannot be rewound"):
        _run("topk", iter([DATA[:32]] * 30), resume_from=path)
    with pytest.raises(ValueError, match="was written while training on tensor data"):
        _run("topk", shard_stream(shards, 32), resume_from=path)
    short = TrainConfig(**{**CFGS["topk"].__dict__, "n_steps": 10})
    with pytest.raises(ValueError, match="n_steps must be at least the checkpoint's 12"):
        _run("topk", DATA, cfg=short, resume_from=path)


def test_bad_checkpoint_arguments(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_dir must be given with checkpoint_every"):
        _run("topk", DATA, checkpoint_every=5)
    with pytest.raises(ValueError, match="checkpoint_every must be at least 0"):
        _run("topk", DATA, checkpoint_dir=tmp_path, checkpoint_every=-1)
    with pytest.raises(FileNotFoundError, match="holds no step_"):
        _run("topk", DATA, resume_from=tmp_path)
    save_sae(make_sae(SAES["topk"]), tmp_path / "sae.safetensors")
    with pytest.raises(ValueError, match="not a training-state checkpoint"):
        load_train_state(tmp_path / "sae.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_train_state(tmp_path / "junk.safetensors")


def test_a_stream_resumes_at_its_position(shards):
    info = shard_folder_info(shards)
    assert info["d"] == D_IN and info["rows"] == [70, 37, 91, 40]
    a = shard_stream(shards, 50, seed=1)
    batches = [next(a) for _ in range(12)]  # 600 rows: more than two epochs of 238
    b = shard_stream(shards, 50, seed=1)
    for _ in range(5):
        next(b)
    c = shard_stream(shards, 50, seed=1)
    c.seek(b.position())
    for want in batches[5:]:
        assert torch.equal(next(c), want)
    epoch = torch.cat(batches)[:238]  # the first epoch holds every row once
    every = torch.cat([c.load(i) for i in range(4)])  # [238, d_in] in file order
    assert torch.equal(epoch[epoch[:, 0].argsort()], every[every[:, 0].argsort()])


def test_ranks_split_the_global_batch_rows(shards):
    one = next(shard_stream(shards, 32, seed=1))
    halves = [next(shard_stream(shards, 32, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert torch.equal(halves[0], one[0::2]) and torch.equal(halves[1], one[1::2])
    assert torch.equal(shard_stream(shards, 32, seed=1, rank=1, world_size=2).b_dec_sample(8),
                       one[:8])  # the b_dec sample of one process, on every rank


def test_bad_stream_arguments(shards, tmp_path):
    with pytest.raises(ValueError, match="batch_size must be a multiple of world_size"):
        shard_stream(shards, 33, world_size=2, rank=0)
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        shard_stream(shards, 32, world_size=2, rank=2)
    with pytest.raises(ValueError, match="position must have keys"):
        shard_stream(shards, 32).seek({"epoch": 0})
    with pytest.raises(ValueError, match="no meta.json"):
        shard_folder_info(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"n_shards": 2}))
    save_file({"activations": torch.zeros(3, 4)}, str(tmp_path / "shard_00000.safetensors"))
    with pytest.raises(ValueError, match="shard_00001.safetensors is missing or unreadable"):
        shard_folder_info(tmp_path)
    save_file({"activations": torch.zeros(3, 5)}, str(tmp_path / "shard_00001.safetensors"))
    with pytest.raises(ValueError, match=r"different widths \[4, 5\]"):
        shard_folder_info(tmp_path)
    with pytest.raises(ValueError, match="every chunk of the stream is empty"):
        next(ChunkStream(2, lambda i: torch.zeros(0, 3), 4))


def test_a_stream_checkpoint_needs_the_same_stream(shards, tmp_path):
    _run("topk", shard_stream(shards, 32, seed=3), checkpoint_dir=tmp_path, checkpoint_every=12)
    _, meta = load_train_state(tmp_path)
    # 24 * 32 = 768 rows = 3 epochs of 238 + 54: epoch 3's first shard (37 rows) and 17 more
    assert meta["data"]["positions"] == [{"epoch": 3, "index": 1, "offset": 17}]
    with pytest.raises(ValueError, match=r"another stream: .* differ in \{'seed': \(3, 4\)\}"):
        _run("topk", shard_stream(shards, 32, seed=4), resume_from=tmp_path)
    with pytest.raises(ValueError, match="was written while training on stream data"):
        _run("topk", DATA, resume_from=tmp_path)
