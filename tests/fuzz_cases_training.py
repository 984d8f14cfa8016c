"""Bad inputs for the sparse TopK path (saelab.torch_sae.sparse) and the user-facing helpers of
the training package (saelab.train: guard, data, device options); see tests/fuzz_cases.py for
how to add (same format). saelab.train.distributed, .window and .pairs are internal to the loop
(empty ``__all__``), so they have no cases. Resumable training (saelab.train.state, .streams,
.cli) and rank-sharded harvesting are at the end."""
from __future__ import annotations

import torch

from fuzz_cases import HOOK, TNAN, TX, bad, fn, model, toks, tsae

D_IN, D_SAE = 6, 12
W = torch.randn(D_IN, D_SAE, generator=torch.Generator().manual_seed(0))  # [d_in, d_sae]
B_ENC, B_DEC = torch.zeros(D_SAE), torch.zeros(D_IN)
PRE = TX @ W  # [8, d_sae]
PRE_NAN = PRE.clone()
PRE_NAN[0, 0] = float("nan")
ROWS = torch.arange(8).repeat_interleave(2)  # [16] two kept entries per row
LATS = torch.tensor([0, 1] * 8)  # [16]
KEPT = torch.ones(16)


def codes(latents=LATS, values=None):
    from saelab.torch_sae.sparse import SparseCodes
    values = torch.ones(latents.shape[0]) if values is None else values
    return SparseCodes(ROWS, latents, values, torch.arange(0, 16, 2))


def shard_folder(width=D_IN):
    """A tiny disk-cache folder of two shards (a fresh temporary folder)."""
    import tempfile

    from saelab.lm.disk_cache import write_shards
    folder = tempfile.mkdtemp()
    list(write_shards(folder, {"model": "m"}, [torch.zeros(5, width), torch.zeros(3, width)]))
    return folder


def resume_cases() -> dict:
    st = lambda name: fn(f"saelab.train.state.{name}")  # noqa: E731
    sm = lambda name: fn(f"saelab.train.streams.{name}")  # noqa: E731
    rows = lambda i: torch.zeros(4, D_IN)  # noqa: E731
    missing = "/nonexistent/saelab-fuzz"
    return {
        "saelab.train.state.load_train_state": lambda: [
            bad("path", st("load_train_state"), None),
            bad("path", st("load_train_state"), missing),
            bad("path", st("load_train_state"), shard_folder() + "/shard_00000.safetensors")],
        "saelab.train.state.latest_checkpoint": lambda: [
            bad("folder", st("latest_checkpoint"), None),
            bad("folder", st("latest_checkpoint"), missing)],
        "saelab.train.streams.ChunkStream": lambda: [
            bad("n_chunks", sm("ChunkStream"), 0, rows, 4),
            bad("load", sm("ChunkStream"), 2, None, 4),
            bad("batch_size", sm("ChunkStream"), 2, rows, 0),
            bad("batch_size", sm("ChunkStream"), 2, rows, 3, world_size=2),
            bad("world_size", sm("ChunkStream"), 2, rows, 4, world_size=0),
            bad("rank", sm("ChunkStream"), 2, rows, 4, rank=2, world_size=2),
            bad("seed", sm("ChunkStream"), 2, rows, 4, seed=-1)],
        "saelab.train.streams.shard_folder_info": lambda: [
            bad("folder", sm("shard_folder_info"), None),
            bad("folder", sm("shard_folder_info"), missing)],
        "saelab.train.streams.shard_stream": lambda: [
            bad("folder", sm("shard_stream"), None, 4),
            bad("folder", sm("shard_stream"), missing, 4),
            bad("batch_size", sm("shard_stream"), shard_folder(), 0),
            bad("rank", sm("shard_stream"), shard_folder(), 4, rank=1)],
        "saelab.train.streams.harvest_stream": lambda: [
            bad("hook_name", sm("harvest_stream"), model(), toks(), "blocks.9.nope", 4),
            bad("windows", sm("harvest_stream"), model(), None, HOOK, 4),
            bad("windows", sm("harvest_stream"), model(), toks().float(), HOOK, 4),
            bad("windows", sm("harvest_stream"), model(), toks(), HOOK, 4, windows_per_chunk=4),
            bad("windows_per_chunk", sm("harvest_stream"), model(), toks(), HOOK, 4,
                windows_per_chunk=0)],
        "saelab.train.cli.main": lambda: [
            bad("argv", fn("saelab.train.cli.main"), "--help"),
            bad("argv", fn("saelab.train.cli.main"), [1, 2])],
        "saelab.lm.harvesting.rank_shard": lambda: [
            bad("rank", fn("saelab.lm.harvesting.rank_shard"), 2, 2),
            bad("rank", fn("saelab.lm.harvesting.rank_shard"), -1, 2),
            bad("rank", fn("saelab.lm.harvesting.rank_shard"), 1, None),
            bad("world_size", fn("saelab.lm.harvesting.rank_shard"), 0, 0),
            bad("world_size", fn("saelab.lm.harvesting.rank_shard"), 0, "2")],
    }


def training_cases() -> dict:
    from saelab.train import TrainConfig
    sp = lambda name: fn(f"saelab.torch_sae.sparse.{name}")  # noqa: E731
    dev = lambda name: fn(f"saelab.train.device.{name}")  # noqa: E731
    cpu, f32 = torch.device("cpu"), torch.float32
    g = torch.Generator()
    cfg = TrainConfig(batch_size=4)
    return {
        **resume_cases(),
        # -- sparse TopK path (Chapter 4 speed box)
        "saelab.torch_sae.sparse.dense_pre_acts": lambda: [
            bad("x", sp("dense_pre_acts"), None, W, B_ENC, B_DEC),
            bad("x", sp("dense_pre_acts"), TNAN, W, B_ENC, B_DEC),
            bad("x", sp("dense_pre_acts"), TX[:, :4], W, B_ENC, B_DEC),
            bad("x", sp("dense_pre_acts"), TX.double(), W, B_ENC, B_DEC),
            bad("W_enc", sp("dense_pre_acts"), TX, W[0], B_ENC, B_DEC),
            bad("b_enc", sp("dense_pre_acts"), TX, W, torch.zeros(3), B_DEC),
            bad("b_dec", sp("dense_pre_acts"), TX, W, B_ENC, "zeros")],
        "saelab.torch_sae.sparse.topk_selection": lambda: [
            bad("pre", sp("topk_selection"), None, 2),
            bad("pre", sp("topk_selection"), PRE_NAN, 2),
            bad("pre", sp("topk_selection"), PRE[0], 2),
            bad("pre", sp("topk_selection"), PRE.long(), 2),
            bad("k", sp("topk_selection"), PRE, 0),
            bad("k", sp("topk_selection"), PRE, D_SAE + 1),
            bad("k", sp("topk_selection"), PRE, 2.5)],
        "saelab.torch_sae.sparse.batch_topk_selection": lambda: [
            bad("pre", sp("batch_topk_selection"), [[1.0, 2.0]], 1),
            bad("pre", sp("batch_topk_selection"), PRE_NAN, 4),
            bad("pre", sp("batch_topk_selection"), torch.zeros(0, D_SAE), 1),
            bad("n_keep", sp("batch_topk_selection"), PRE, 0),
            bad("n_keep", sp("batch_topk_selection"), PRE, PRE.numel() + 1),
            bad("n_keep", sp("batch_topk_selection"), PRE, None)],
        "saelab.torch_sae.sparse.sparse_codes": lambda: [
            bad("x", sp("sparse_codes"), None, W, B_ENC, B_DEC, ROWS, LATS, KEPT),
            bad("rows", sp("sparse_codes"), TX, W, B_ENC, B_DEC, ROWS.float(), LATS, KEPT),
            bad("rows", sp("sparse_codes"), TX, W, B_ENC, B_DEC, ROWS[:3], LATS, KEPT),
            bad("rows", sp("sparse_codes"), TX, W, B_ENC, B_DEC, ROWS + 8, LATS, KEPT),
            bad("rows", sp("sparse_codes"), TX, W, B_ENC, B_DEC, ROWS.flip(0), LATS, KEPT),
            bad("latents", sp("sparse_codes"), TX, W, B_ENC, B_DEC, ROWS, LATS + D_SAE, KEPT),
            bad("latents", sp("sparse_codes"), TX, W, B_ENC, B_DEC, ROWS, None, KEPT),
            bad("pre_kept", sp("sparse_codes"), TX, W, B_ENC, B_DEC, ROWS, LATS,
                torch.full((16,), float("nan"))),
            bad("pre_kept", sp("sparse_codes"), TX, W, B_ENC, B_DEC, ROWS, LATS, KEPT.double()),
            bad("relu", sp("sparse_codes"), TX, W, B_ENC, B_DEC, ROWS, LATS, KEPT, relu="yes")],
        "saelab.torch_sae.sparse.decode_sparse": lambda: [
            bad("codes", sp("decode_sparse"), None, W.T),
            bad("codes", sp("decode_sparse"), (ROWS, LATS, KEPT), W.T),
            bad("codes", sp("decode_sparse"), codes(LATS + D_SAE), W.T),
            bad("codes", sp("decode_sparse"), codes(values=KEPT.double()), W.T),
            bad("codes", sp("decode_sparse"), codes(values=torch.ones(3)), W.T),
            bad("W_dec", sp("decode_sparse"), codes(), W.T[0]),
            bad("limit", sp("decode_sparse"), codes(), W.T, limit=-1),
            bad("limit", sp("decode_sparse"), codes(), W.T, limit=D_SAE + 1),
            bad("limit", sp("decode_sparse"), codes(), W.T, limit=1.5)],
        "saelab.torch_sae.sparse.to_dense": lambda: [
            bad("codes", sp("to_dense"), None, D_SAE),
            bad("codes", sp("to_dense"), codes(values=torch.ones(3)), D_SAE),
            bad("d_sae", sp("to_dense"), codes(), 0),
            bad("d_sae", sp("to_dense"), codes(), 1),  # latent 1 does not fit
            bad("d_sae", sp("to_dense"), codes(), "12")],
        "saelab.torch_sae.sparse.fired_latents": lambda: [
            bad("codes", sp("fired_latents"), None),
            bad("codes", sp("fired_latents"), torch.ones(8, D_SAE)),
            bad("codes", sp("fired_latents"), codes(values=LATS))],  # integer values
        # -- saelab.train: sparse-path choice, lr bound, divergence guard, data, device options
        "saelab.train.use_sparse_path": lambda: [
            bad("sae", fn("saelab.train.use_sparse_path"), None),
            bad("sae", fn("saelab.train.use_sparse_path"), torch.nn.Linear(2, 2)),
            bad("sparse", fn("saelab.train.use_sparse_path"), tsae(), "yes"),
            bad("sparse", fn("saelab.train.use_sparse_path"), tsae("l1"), True)],
        "saelab.train.guard.check_lr_fits": lambda: [
            bad("lr", fn("saelab.train.guard.check_lr_fits"), float("nan"), (0.9, 0.999), f32),
            bad("lr", fn("saelab.train.guard.check_lr_fits"), -1.0, (0.9, 0.999), f32),
            bad("lr", fn("saelab.train.guard.check_lr_fits"), 1e300, (0.9, 0.999), f32),
            bad("lr", fn("saelab.train.guard.check_lr_fits"), 1e5, (0.9, 0.999), torch.float16),
            bad("betas", fn("saelab.train.guard.check_lr_fits"), 1e-3, (0.9,), f32),
            bad("betas", fn("saelab.train.guard.check_lr_fits"), 1e-3, (0.9, 1.0), f32),
            bad("betas", fn("saelab.train.guard.check_lr_fits"), 1e-3, None, f32),
            bad("dtype", fn("saelab.train.guard.check_lr_fits"), 1e-3, (0.9, 0.999), torch.long),
            bad("dtype", fn("saelab.train.guard.check_lr_fits"), 1e-3, (0.9, 0.999), "float32")],
        "saelab.train.guard.DivergenceGuard": lambda: [
            bad("sae", fn("saelab.train.guard.DivergenceGuard"), None, 1e3),
            bad("max_fvu_growth", fn("saelab.train.guard.DivergenceGuard"), tsae(), 0.0),
            bad("max_fvu_growth", fn("saelab.train.guard.DivergenceGuard"), tsae(), float("nan")),
            bad("max_fvu_growth", fn("saelab.train.guard.DivergenceGuard"), tsae(), None)],
        "saelab.train.data.prepare_data": lambda: [
            bad("data", fn("saelab.train.data.prepare_data"), None, cfg, D_IN, g),
            bad("data", fn("saelab.train.data.prepare_data"), TNAN, cfg, D_IN, g),
            bad("data", fn("saelab.train.data.prepare_data"), TX, cfg, D_IN + 1, g),
            bad("data", fn("saelab.train.data.prepare_data"), [], cfg, D_IN, g),
            bad("batch_size", fn("saelab.train.data.prepare_data"), TX[:2], cfg, D_IN, g),
            bad("cfg", fn("saelab.train.data.prepare_data"), TX, {"batch_size": 4}, D_IN, g),
            bad("d_in", fn("saelab.train.data.prepare_data"), TX, cfg, 0, g),
            bad("g", fn("saelab.train.data.prepare_data"), TX, cfg, D_IN, 0)],
        "saelab.train.device.use_bf16": lambda: [
            bad("precision", dev("use_bf16"), "fp16", cpu, f32),
            bad("precision", dev("use_bf16"), None, cpu, f32),
            bad("device", dev("use_bf16"), "bf16", "cuda", f32),
            bad("dtype", dev("use_bf16"), "bf16", cpu, "float32")],
        "saelab.train.device.autocast": lambda: [
            bad("bf16", dev("autocast"), "bf16"), bad("bf16", dev("autocast"), None)],
        "saelab.train.device.set_tf32": lambda: [
            bad("tf32", dev("set_tf32"), "yes", cpu), bad("device", dev("set_tf32"), True, "cpu")],
        "saelab.train.memory.keep_freed_memory": lambda: [
            bad("enabled", lambda v: fn("saelab.train.memory.keep_freed_memory")(v).__enter__(),
                "yes"),
            bad("enabled", lambda v: fn("saelab.train.memory.keep_freed_memory")(v).__enter__(),
                None)],
        "saelab.train.stopping.stop_on_signals": lambda: [
            bad("signals", lambda v: fn("saelab.train.stopping.stop_on_signals")(v).__enter__(),
                15),
            bad("signals", lambda v: fn("saelab.train.stopping.stop_on_signals")(v).__enter__(),
                ["SIGTERM"])],
        "saelab.train.stopping.StopRequest": lambda: [
            bad("signum", lambda v: fn("saelab.train.stopping.StopRequest")().set(v), "TERM"),
            bad("signum", lambda v: fn("saelab.train.stopping.StopRequest")().set(v), 1.5)],
        "saelab.train.device.maybe_compile": lambda: [
            bad("forward", dev("maybe_compile"), None, True, cpu),
            bad("compile", dev("maybe_compile"), tsae(), "yes", cpu),
            bad("device", dev("maybe_compile"), tsae(), True, None)],
    }
