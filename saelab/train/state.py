"""Resumable training: the training-state checkpoints of :func:`saelab.train.train_sae`.

A checkpoint is one safetensors file (no pickle, so loading one cannot run code):

    tensors    sae.*      the SAE's parameters and buffers (BatchTopK's threshold)
               opt.I.*    Adam's state of parameter I (step, exp_avg, exp_avg_sq)
               guard.*    the divergence guard's last good weights
               tracker    tokens since each latent fired [d_sae]
               window     the sums of the current logging window [5] (summed over ranks)
               rng.*      the batch generator's and torch's RNG states; data.order: the epoch's
                          row order of tensor data
    metadata   "saelab_train_state": JSON with the step, tokens seen, TrainConfig, the SAE's
               family and config, the guard's scalars, the history so far, resampling events
               and the data position (tensor data: offset in the epoch's order; a stream with
               ``position()``/``seek()``, e.g. saelab.train.streams: each rank's position)

``train_sae(..., checkpoint_dir=D, checkpoint_every=N)`` writes ``D/step_<8 digits>.safetensors``
every N steps (N = 0: never) and after the last step: rank 0 only under torch.distributed, to a temporary name
first and then renamed, so a crash never leaves a half-written checkpoint.
``train_sae(..., resume_from=P)`` (a file, or a folder: its latest checkpoint) restores all of
it and continues with the same batches, so 2N steps in one run and N + N steps with a resume
in between give the same weights (tests/test_train_resume.py). A checkpoint from another
setting is refused: only the fields in ``RESUME_MAY_DIFFER`` may change. A longer ``n_steps``
extends a run; the learning-rate and sparsity schedules then follow the new ``n_steps``.
Chapter 4 (training at scale) and book/training_at_scale.md.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from saelab._checks import check_instance, check_int_in_range
from saelab.train import distributed as train_dist
from saelab.train.data import ShuffledBatches

__all__ = ["RESUME_MAY_DIFFER", "load_train_state", "latest_checkpoint"]

RESUME_MAY_DIFFER = ("n_steps", "log_every", "device", "compile", "tf32", "keep_memory")
_KEY = "saelab_train_state"
_PREFIX, _SUFFIX = "step_", ".safetensors"


def latest_checkpoint(folder) -> Path | None:
    """The checkpoint of the highest step in ``folder`` (``step_*.safetensors``), or None."""
    check_instance("folder", folder, (str, os.PathLike), "a folder path")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder={str(folder)!r} is not a folder of checkpoints")
    found = sorted(p for p in folder.glob(f"{_PREFIX}*{_SUFFIX}")
                   if p.name[len(_PREFIX):-len(_SUFFIX)].isdigit())
    return found[-1] if found else None


def load_train_state(path) -> tuple[dict, dict]:
    """(tensors, metadata) of a training-state checkpoint ``path`` (a file, or a folder: its
    latest checkpoint); metadata also gets ``"path"``, the file read."""
    check_instance("path", path, (str, os.PathLike), "a checkpoint file or folder")
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"path={str(path)!r} holds no {_PREFIX}*{_SUFFIX} checkpoint")
        path = found
    if not path.is_file():
        raise FileNotFoundError(f"no training checkpoint at path={str(path)!r}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = (fh.metadata() or {}).get(_KEY)
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"path={str(path)!r} is not a readable safetensors file ({err})") from err
    if meta is None:
        raise ValueError(f"path={str(path)!r} is a safetensors file but not a training-state "
                         f"checkpoint (no {_KEY!r} metadata); train_sae(checkpoint_dir=...) "
                         f"writes those (saelab.checkpoint.save_sae writes plain SAEs)")
    meta = json.loads(meta)
    meta["path"] = str(path)
    return tensors, meta


def _fields(obj) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(obj)))  # tuples -> lists, as stored


def _refuse_mismatch(meta: dict, cfg, sae_cfg) -> None:
    path = meta["path"]
    if meta["family"] != sae_cfg.family:
        raise ValueError(f"resume_from={path!r} holds a {meta['family']} SAE; this run trains "
                         f"a {sae_cfg.family} SAE")
    for prefix, saved, now, may_differ in (("sae.cfg", meta["sae_config"], _fields(sae_cfg), ()),
                                           ("cfg", meta["train_config"], _fields(cfg),
                                            RESUME_MAY_DIFFER)):
        for name in sorted(set(saved) | set(now)):
            if name not in may_differ and saved.get(name) != now.get(name):
                raise ValueError(
                    f"resume_from={path!r}: {prefix}.{name} is {saved.get(name)!r} in the "
                    f"checkpoint but {now.get(name)!r} in this run; a resumed run must use the "
                    f"checkpoint's settings (only TrainConfig fields {RESUME_MAY_DIFFER} may "
                    f"change)")
    if cfg.n_steps < meta["step"]:
        raise ValueError(f"resume_from={path!r}: cfg.n_steps must be at least the "
                         f"checkpoint's {meta['step']} steps done, got {cfg.n_steps}")


def _data_kind(data) -> str:
    if isinstance(data, torch.Tensor) or type(data).__module__ == "numpy":
        return "tensor"
    return "stream" if hasattr(data, "position") and hasattr(data, "seek") else "iterable"


class Checkpointer:
    """What :func:`saelab.train.train_sae` calls to write and restore training state."""

    def __init__(self, cfg, sae, data, checkpoint_dir, checkpoint_every: int, resume_from,
                 rank: int, world_size: int) -> None:
        check_int_in_range("checkpoint_every", checkpoint_every, 0)
        if checkpoint_dir is not None:
            check_instance("checkpoint_dir", checkpoint_dir, (str, os.PathLike), "a folder path")
        if checkpoint_every > 0 and checkpoint_dir is None:
            raise ValueError(f"checkpoint_dir must be given with checkpoint_every="
                             f"{checkpoint_every}, got None")
        self.dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.every, self.cfg, self.data = checkpoint_every, cfg, data
        self.kind, self.rank, self.world_size = _data_kind(data), rank, world_size
        self.tensors, self.meta, self.saved_step = None, None, None
        if resume_from is not None:
            self.tensors, self.meta = load_train_state(resume_from)
            _refuse_mismatch(self.meta, cfg, sae.cfg)
            self._check_data()
            if self.kind == "stream":  # before train_sae takes its first batch
                positions = self.meta["data"]["positions"]
                data.seek(positions[rank if len(positions) > 1 else 0])
        if self.dir is not None and rank == 0:
            self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def resumed(self) -> bool:
        return self.meta is not None

    def _check_data(self) -> None:
        saved, path = self.meta["data"], self.meta["path"]
        if "iterable" in (saved["kind"], self.kind):
            raise ValueError(f"data must be a tensor or a stream with position() and seek() to "
                             f"resume (a plain iterable cannot be rewound); resume_from={path!r} "
                             f"was trained on {saved['kind']} data, this run has {self.kind} data")
        if saved["kind"] != self.kind:
            raise ValueError(f"resume_from={path!r} was written while training on "
                             f"{saved['kind']} data; data must be the same {saved['kind']} "
                             f"data to resume, got {self.kind} data")
        if self.kind == "tensor" and saved["shape"] != list(self.data.shape):
            raise ValueError(f"resume_from={path!r} was trained on data of shape "
                             f"{saved['shape']}; got data of shape {list(self.data.shape)}")
        if self.kind == "stream":
            now = self.data.describe()
            if saved["source"] != now:
                diff = {k: (saved["source"].get(k), now.get(k))
                        for k in sorted(set(saved["source"]) | set(now))
                        if saved["source"].get(k) != now.get(k)}
                raise ValueError(f"resume_from={path!r} was trained on another stream: "
                                 f"(checkpoint, this run) differ in {diff}; data must be the "
                                 f"stream the checkpoint was trained on")
            positions = saved["positions"]
            if len(positions) > 1 and len(positions) != self.world_size:
                raise ValueError(f"resume_from={path!r} holds the stream positions of "
                                 f"{len(positions)} ranks, which differ; resume with "
                                 f"{len(positions)} processes, got {self.world_size}")

    @torch.no_grad()
    def restore(self, loop) -> tuple[int, int, float]:
        """Load the checkpoint into the loop's objects; return (steps done, tokens seen, lr of
        the last step)."""
        t, meta = self.tensors, self.meta
        sae_state = {k[4:]: v for k, v in t.items() if k.startswith("sae.")}
        loop.sae.load_state_dict(sae_state)
        state = loop.opt.state_dict()
        params = len(state["param_groups"][0]["params"])
        state["state"] = {i: {k.split(".", 2)[2]: v for k, v in t.items()
                              if k.startswith(f"opt.{i}.")} for i in range(params)}
        state["state"] = {i: s for i, s in state["state"].items() if s}
        loop.opt.load_state_dict(state)
        for p, s in loop.opt.state.items():  # Adam's moments laid out like their parameter:
            for k, v in s.items():  # the fused kernel assumes it (W_enc is a transpose)
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    s[k] = torch.empty_like(p).copy_(v)
        for name, snap in loop.guard.snapshot.items():
            snap.copy_(t[f"guard.{name}"])
        g = meta["guard"]
        loop.guard.fvu_bound, loop.guard.good_step = g["fvu_bound"], g["good_step"]
        device = loop.tracker.tokens_since_fired.device
        loop.guard.first_bad = torch.tensor(g["first_bad"], device=device)
        loop.tracker.tokens_since_fired.copy_(t["tracker"])
        if self.rank == 0:  # window sums were summed over ranks: one rank holds them
            loop.window.sums.copy_(t["window"])
        loop.window.n_steps = meta["window_steps"]
        for name, values in meta["history"].items():
            getattr(loop.history, name)[:] = values
        loop.resampled[:] = [tuple(r) for r in meta["resampled"]]
        loop.g.set_state(t["rng.g"])
        torch.set_rng_state(t["rng.torch"])
        if self.kind == "tensor":
            loop.batches.order = t.get("data.order")
            loop.batches.start = meta["data"]["start"]
        return meta["step"], meta["tokens"], meta["lr"]

    def after_step(self, done: int, tokens: int, lr: float, loop) -> Path | None:
        """Write a checkpoint after step ``done`` if it is due: every ``checkpoint_every``
        steps (0: never) and after the last step, whenever ``checkpoint_dir`` is given."""
        if self.dir is None:
            return None
        if done != self.cfg.n_steps and (self.every == 0 or done % self.every):
            return None
        return self.save(done, tokens, lr, loop)

    def save_unless_saved(self, done: int, tokens: int, lr: float, loop) -> Path | None:
        """The checkpoint of step ``done`` (training stops early): written now unless
        ``after_step`` just wrote it; None without ``checkpoint_dir`` and on ranks above 0."""
        if self.dir is None:
            return None
        if self.saved_step == done:
            return self.dir / f"{_PREFIX}{done:08d}{_SUFFIX}" if self.rank == 0 else None
        return self.save(done, tokens, lr, loop)

    @torch.no_grad()
    def save(self, done: int, tokens: int, lr: float, loop) -> Path | None:
        """Write ``checkpoint_dir/step_<done>.safetensors`` (rank 0; collective under dist)."""
        window = loop.window.sums
        first_bad = loop.guard.first_bad
        first_bad = torch.zeros((), dtype=torch.long) if first_bad is None else first_bad
        self.saved_step = done
        positions = [self.data.position()] if self.kind == "stream" else None
        if self.world_size > 1:  # every rank takes part, rank 0 writes
            window = train_dist.sum_over_ranks(window)
            first_bad = first_bad.clone()
            dist.all_reduce(first_bad, op=dist.ReduceOp.MAX)
            if positions is not None:
                gathered = [None] * self.world_size
                dist.all_gather_object(gathered, positions[0])
                positions = gathered[:1] if all(p == gathered[0] for p in gathered) else gathered
        if self.rank != 0:
            return None
        tensors = {f"sae.{k}": v for k, v in loop.sae.state_dict().items()}
        for i, s in loop.opt.state_dict()["state"].items():
            tensors.update({f"opt.{i}.{k}": v for k, v in s.items() if torch.is_tensor(v)})
        tensors.update({f"guard.{k}": v for k, v in loop.guard.snapshot.items()})
        tensors.update(tracker=loop.tracker.tokens_since_fired, window=window,
                       **{"rng.g": loop.g.get_state(), "rng.torch": torch.get_rng_state()})
        data = {"kind": self.kind}
        if self.kind == "tensor":
            data.update(shape=list(self.data.shape), start=loop.batches.start)
            if loop.batches.order is not None:
                tensors["data.order"] = loop.batches.order
        elif self.kind == "stream":
            data.update(source=self.data.describe(), positions=positions)
        meta = {"step": done, "tokens": tokens, "lr": lr, "family": loop.sae.cfg.family,
                "sae_config": _fields(loop.sae.cfg), "train_config": _fields(self.cfg),
                "guard": {"fvu_bound": loop.guard.fvu_bound, "good_step": loop.guard.good_step,
                          "first_bad": int(first_bad)},
                "window_steps": loop.window.n_steps, "history": dataclasses.asdict(loop.history),
                "resampled": [list(r) for r in loop.resampled], "data": data}
        tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
        path = self.dir / f"{_PREFIX}{done:08d}{_SUFFIX}"
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={_KEY: json.dumps(meta)})
        os.replace(tmp, path)  # atomic on POSIX and Windows
        return path



def loop_state(sae, opt, tracker, guard, history, window, resampled, g, batches):
    """The loop's objects that a checkpoint saves and restores, in one namespace."""
    return SimpleNamespace(sae=sae, opt=opt, tracker=tracker, guard=guard, history=history,
                           window=window, resampled=resampled, g=g, batches=batches)
