"""Train an SAE from the command line: ``python -m saelab.train.cli --help``.

Data comes from a folder of cached activation shards (``saelab.lm.iter_activations(...,
cache_dir=...)`` writes one) streamed in a seeded order, or is harvested on the fly from a model
and text files. Training is :func:`saelab.train.train_sae`, with training-state checkpoints
every ``--checkpoint-every`` steps and ``--resume`` (:mod:`saelab.train.state`). SIGTERM (a
scheduler's notice before preemption) or Ctrl-C ends training after the current step with a
checkpoint of it (:mod:`saelab.train.stopping`) and exit code 128 + the signal's number; under
torchrun the ranks agree at the next history row (``--log-every``). The trained SAE is written with :func:`saelab.checkpoint.save_sae` (and, with ``--saelens-dir``, as an SAELens
folder). Under ``torchrun --nproc_per_node N -m saelab.train.cli ...`` every process joins the
process group (gloo on CPU, nccl on CUDA) and reads its own part of the data
(:mod:`saelab.train.streams`); rank 0 writes the checkpoints and the SAE.

With ``--model``, the text is cut into token windows once at the start (8 bytes per token in
memory) and the forward passes run as training consumes them.

Bad input (a missing folder, an unknown family, a shard width that is not ``--d-in``, a resume
checkpoint from other settings) ends with a message naming the argument and exit code 2; a run
that diverges (``TrainingDivergedError``) ends with its message and exit code 1.
Chapter 4 and book/training_at_scale.md ("Resuming and the command line").
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import threading
import warnings
from pathlib import Path

import torch

__all__ = ["main"]

_SAE_FLAGS = {"k": "k", "k_aux": "k_aux", "l1_coeff": "l1_coeff", "l0_coeff": "l0_coeff"}


class _UsageError(Exception):
    """Bad input found after parsing: reported like argparse's own errors (exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m saelab.train.cli`` (its ``--help``)."""
    from saelab.train import B_DEC_INITS
    from saelab.train.device import PRECISIONS

    p = argparse.ArgumentParser(
        prog="python -m saelab.train.cli",
        description="Train a sparse autoencoder on cached activation shards or on activations\n"
                    "harvested from a model, with resumable checkpoints; runs data-parallel\n"
                    "under torchrun (rank 0 writes checkpoints and the SAE).",
        epilog="examples:\n"
               "  python -m saelab.train.cli --shards acts/ --family topk --k 32 --expansion 16 "
               "--steps 20000 --out sae.safetensors --checkpoint-dir ckpt --checkpoint-every 1000\n"
               "  python -m saelab.train.cli ... --resume     # continue from ckpt's latest\n"
               "  torchrun --nproc_per_node 4 -m saelab.train.cli --shards acts/ ...\n"
               "  python -m saelab.train.cli --model saelab-tiny --hook blocks.2.hook_resid_pre "
               "--corpus texts/ --family l1 --l1-coeff 1 --expansion 8 --out sae.safetensors\n\n"
               "SIGTERM or Ctrl-C stops after the current step with a checkpoint of it in\n"
               "--checkpoint-dir (exit code 143 or 130); --resume continues.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data (give --shards, or --model with --hook and --corpus)")
    src = data.add_mutually_exclusive_group(required=True)
    src.add_argument("--shards", metavar="FOLDER",
                     help="folder of activation shards with meta.json (saelab.lm disk cache)")
    src.add_argument("--model", help="'saelab-tiny', a TransformerLens name or a model folder")
    data.add_argument("--hook", help="hook to harvest, e.g. blocks.2.hook_resid_pre")
    data.add_argument("--corpus", nargs="+", metavar="PATH",
                      help="text files, or folders of *.txt files")
    data.add_argument("--seq-len", type=int, default=128, help="window length, BOS included")
    data.add_argument("--max-tokens", type=int, help="use at most this many corpus tokens")
    data.add_argument("--harvest-batch", type=int, default=32,
                      help="windows per forward pass (and per rank) when harvesting")
    data.add_argument("--d-in", type=int, help="check the activations have this width")

    sae = p.add_argument_group("the SAE")
    sae.add_argument("--family", default="topk",
                     help=f"one of {', '.join(sorted(_families()))} (default topk)")
    width = sae.add_mutually_exclusive_group()
    width.add_argument("--d-sae", type=int, help="number of latents")
    width.add_argument("--expansion", type=int, default=8, help="d_sae = expansion * d_in (8)")
    sae.add_argument("--k", type=int, help="active latents per row (TopK families)")
    sae.add_argument("--k-aux", type=int, help="dead latents used by AuxK (TopK families)")
    sae.add_argument("--l1-coeff", type=float, help="L1 coefficient (l1, gated)")
    sae.add_argument("--l0-coeff", type=float, help="L0 coefficient (jumprelu)")
    sae.add_argument("--sae-set", action="append", default=[], metavar="FIELD=VALUE",
                     help="any other field of the family's config (repeatable; VALUE as JSON)")

    tr = p.add_argument_group("training")
    tr.add_argument("--steps", type=int, default=3000, help="optimizer steps (3000)")
    tr.add_argument("--batch-size", type=int, default=4096, help="rows per global batch (4096)")
    tr.add_argument("--lr", type=float, default=2e-4, help="peak Adam learning rate (2e-4)")
    tr.add_argument("--seed", type=int, default=0, help="SAE init, data order (0)")
    tr.add_argument("--dead-window-tokens", type=int, default=1_000_000,
                    help="tokens of silence after which a latent counts as dead (1e6)")
    tr.add_argument("--b-dec-init", default="geometric_median", choices=B_DEC_INITS)
    tr.add_argument("--log-every", type=int, default=100, help="steps between history rows")
    tr.add_argument("--device", help="e.g. cuda, cpu (default: cuda if available)")
    tr.add_argument("--precision", default="float32", choices=PRECISIONS)
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")

    out = p.add_argument_group("checkpoints and output")
    out.add_argument("--out", required=True, metavar="FILE",
                     help="where to write the trained SAE (.safetensors, saelab.checkpoint)")
    out.add_argument("--saelens-dir", metavar="FOLDER", help="also write an SAELens folder")
    out.add_argument("--history", metavar="FILE", help="write the training history as JSON")
    out.add_argument("--checkpoint-dir", metavar="FOLDER", help="training-state checkpoints")
    out.add_argument("--checkpoint-every", type=int, default=0,
                     help="steps between checkpoints (0: only after the last step)")
    out.add_argument("--resume", nargs="?", const="latest", metavar="CHECKPOINT",
                     help="resume from CHECKPOINT, or without a value from the latest in "
                          "--checkpoint-dir")
    return p


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _families() -> dict:
    from saelab.checkpoint import CONFIG_CLASSES
    return {k: v for k, v in CONFIG_CLASSES.items() if k != "transcoder"}  # needs (in, out) rows


def _sae_config(args, d_in: int):
    if args.family not in _families():
        raise _UsageError(f"--family must be one of {sorted(_families())}, got {args.family!r}")
    cls = _families()[args.family]
    names = {f.name for f in dataclasses.fields(cls)}
    d_sae = args.d_sae if args.d_sae is not None else args.expansion * d_in
    fields = {"d_in": d_in, "d_sae": d_sae}
    for flag, name in _SAE_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            if name not in names:
                raise _UsageError(f"--{flag.replace('_', '-')} does not apply to the "
                                  f"{args.family} family (its settings: {sorted(names)})")
            fields[name] = value
    for item in args.sae_set:
        name, sep, value = item.partition("=")
        if not sep or name not in names:
            raise _UsageError(f"--sae-set must be FIELD=VALUE with FIELD one of {sorted(names)} "
                              f"for the {args.family} family, got {item!r}")
        fields[name] = _parse_value(value)
    try:
        return cls(**fields)
    except (TypeError, ValueError) as err:
        raise _UsageError(f"bad SAE settings for the {args.family} family: {err}") from err


def _world():
    """Join the torchrun process group if launched by torchrun; return (rank, world, device)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    if world > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _data(args, rank: int, world: int, device: str):
    """(stream, d_in, (model name, hook name)) for the arguments."""
    from saelab.train.streams import harvest_stream, shard_folder_info, shard_stream

    if args.batch_size % world:
        raise _UsageError(f"--batch-size must be a multiple of the {world} processes, "
                          f"got {args.batch_size}")
    if args.shards is not None:
        if not Path(args.shards).is_dir():
            raise _UsageError(f"--shards: no folder at {args.shards!r}")
        try:
            info = shard_folder_info(args.shards)
        except (ValueError, FileNotFoundError) as err:
            raise _UsageError(f"--shards: {err}") from err
        stream = shard_stream(args.shards, args.batch_size, seed=args.seed, rank=rank,
                              world_size=world)
        return stream, info["d"], (str(info.get("model", "unknown")),
                                   str(info.get("hook_name", "unknown")))
    from saelab import lm

    if args.hook is None or not args.corpus:
        raise _UsageError("--model needs --hook and --corpus")
    for path in args.corpus:
        if not Path(path).exists():
            raise _UsageError(f"--corpus: no file or folder at {path!r}")
    try:
        model = lm.load_model(args.model, device=device)
        lm.check_hook_name(model, args.hook)
    except (ValueError, lm.ModelUnavailableError) as err:
        raise _UsageError(f"--model/--hook: {err}") from err
    texts = [t for p in args.corpus for t in lm.read_text_files(p)]
    max_windows = None if args.max_tokens is None else -(-args.max_tokens // (args.seq_len - 1))
    try:
        windows = lm.token_windows(model, texts, args.seq_len, max_windows=max_windows)
        stream = harvest_stream(model, windows, args.hook, args.batch_size,
                                windows_per_chunk=args.harvest_batch, seed=args.seed,
                                rank=rank, world_size=world)
    except ValueError as err:
        raise _UsageError(f"--corpus/--seq-len/--harvest-batch: {err}") from err
    return stream, lm.hook_width(model, args.hook), (model.cfg.model_name, args.hook)


def _resume_path(args):
    if args.resume is None:
        return None
    if args.resume == "latest":
        if args.checkpoint_dir is None:
            raise _UsageError("--resume without a value needs --checkpoint-dir")
        return args.checkpoint_dir
    if not Path(args.resume).exists():
        raise _UsageError(f"--resume: no checkpoint at {args.resume!r}")
    return args.resume


def _check_args(args) -> None:
    if args.max_tokens is not None and args.max_tokens < 1:
        raise _UsageError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    for flag in ("steps", "batch_size", "seq_len", "harvest_batch", "log_every"):
        if getattr(args, flag) < 1:
            raise _UsageError(f"--{flag.replace('_', '-')} must be at least 1, "
                              f"got {getattr(args, flag)}")
    if args.checkpoint_every < 0:
        raise _UsageError(f"--checkpoint-every must be at least 0, got {args.checkpoint_every}")
    if args.checkpoint_every > 0 and args.checkpoint_dir is None:
        raise _UsageError("--checkpoint-every needs --checkpoint-dir")
    out = Path(args.out).resolve().parent
    if not out.is_dir():
        raise _UsageError(f"--out: folder {str(out)!r} does not exist")


def _train(args) -> int:
    from saelab.checkpoint import save_sae
    from saelab.torch_sae import make_sae
    from saelab.train import TrainConfig, TrainingDivergedError, stop_on_signals, train_sae

    _check_args(args)
    rank, world = _world()  # under torchrun on CUDA: this rank's GPU is the current device
    cuda = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else None
    device = args.device or cuda or "cpu"
    stream, d_in, (model_name, hook) = _data(args, rank, world, device)
    if args.d_in is not None and args.d_in != d_in:
        raise _UsageError(f"--d-in is {args.d_in} but the activations have width {d_in}")
    sae_cfg = _sae_config(args, d_in)
    try:
        cfg = TrainConfig(n_steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          seed=args.seed, dead_window_tokens=args.dead_window_tokens,
                          b_dec_init=args.b_dec_init, log_every=args.log_every, device=device,
                          precision=args.precision)
    except ValueError as err:
        raise _UsageError(f"bad training settings: {err}") from err
    torch.manual_seed(args.seed)
    sae = make_sae(sae_cfg, device=device)
    in_main = threading.current_thread() is threading.main_thread()
    try:  # SIGTERM or Ctrl-C: stop after the current step, with a checkpoint of it
        with stop_on_signals() if in_main else contextlib.nullcontext() as stop:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "training stopped on")  # said below instead
                result = train_sae(sae, stream, cfg, progress=not args.no_progress,
                                   checkpoint_dir=args.checkpoint_dir,
                                   checkpoint_every=args.checkpoint_every,
                                   resume_from=_resume_path(args), stop=stop)
    except TrainingDivergedError as err:
        print(f"training diverged: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:
        raise _UsageError(str(err)) from err
    if stop is not None and stop.is_set():
        return _stopped(args, stop, result, sae, rank)
    if rank == 0:
        save_sae(sae, args.out)
        if args.history:
            Path(args.history).write_text(json.dumps(dataclasses.asdict(result.history)))
        if args.saelens_dir:
            from saelab.interop import export_saelens
            export_saelens(sae, args.saelens_dir, model_name=model_name, hook_name=hook,
                           overwrite=True)
        last = result.history
        print(f"trained {sae_cfg.family} SAE d_in={d_in} d_sae={sae_cfg.d_sae}: "
              f"{last.step[-1] if last.step else 0} steps, FVU "
              f"{last.fvu[-1] if last.fvu else float('nan'):.4f}; wrote {args.out}")
    return 0


def _stopped(args, stop, result, sae, rank: int) -> int:
    """Training stopped early on a signal: say where its state is; exit code 128 + signal."""
    from saelab.checkpoint import save_sae
    from saelab.train.state import latest_checkpoint

    done = result.history.step[-1] if result.history.step else 0
    if rank == 0:
        if args.checkpoint_dir is not None:
            where = (f"checkpoint {latest_checkpoint(args.checkpoint_dir)}; continue with the "
                     f"same command and --resume")
        else:  # no training state to resume from: keep at least the weights
            save_sae(sae, args.out)
            where = f"no --checkpoint-dir, so the SAE so far (partial) is in {args.out}"
        print(f"stopped on {stop.reason()} after step {done} of {args.steps}: {where}",
              file=sys.stderr)
    return 128 + (stop.signum or 0)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    if argv is not None and (not isinstance(argv, (list, tuple))
                             or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of strings, got {argv!r}")
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch.distributed as dist
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            return _train(args)
    except _UsageError as err:  # like argparse's errors, without the long usage
        print(f"{parser.prog}: error: {err}\n(see {parser.prog} --help)", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
