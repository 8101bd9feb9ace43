#!/usr/bin/env python3
"""Makes the base model of the convergence experiment: a small pretrained code LLaMA.

Usage:  python3 make_base_model.py OUT_DIR [--minutes 2.5] [--steps N] [--device cuda|cpu] [...]
        (needs torch, transformers, tokenizers; no network; --help lists every option)

No pretrained weights can be downloaded, so we make one: the Python standard library of this very
installation (sysconfig's `stdlib` directory, site-packages left out) is the pretraining corpus.

1. Corpus: every *.py file under the standard library, sorted by path. About 2 % of the files, chosen
   by a hash of their relative path (independent of listing order), are held out.
2. Tokenizer: a byte-level BPE (GPT-2 style, `tokenizers` library) with --vocab ids, trained on up to
   --tokenizer-mb of the training files (in path-hash order; the held-out files never);
   `<|endoftext|>` (id 0) is BOS, EOS and the file separator.
3. Model: transformers' LlamaForCausalLM, by default hidden 768, 8 layers, 6 heads of 128 (the head
   size of DeepSeek-Coder-1.3B, which our GPU kernels are measured on), SwiGLU 2048, untied embeddings,
   vocabulary 16384: 82 M parameters. fp32 weights, bf16 autocast on CUDA, SDPA attention.
4. Training: random windows of --seq + 1 tokens from the concatenated training files (EOS between
   files), --batch windows a step, AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), gradient
   clipping at 1, linear warmup then cosine decay to 10 % of --lr over the time budget (--minutes) or
   over --steps when given. Progress lines every --log-seconds.
5. Held-out loss: mean next-token cross-entropy (fp32) over up to --eval-windows non-overlapping
   windows of the held-out files, and the same over as many training windows (to see over-fitting).
6. Output, a plain Hugging Face directory: config.json, model.safetensors (fp32),
   generation_config.json, tokenizer.json, tokenizer_config.json; and OUT_DIR/pretraining.json with
   the corpus, the model, the training and the held-out loss. Before it finishes, the script reloads
   the directory with transformers and checks that the logits and the tokenizer's ids are the same
   as in memory (exit status 1 if not).

Deterministic: fixed seeds, sorted files, hash-chosen held-out files, seeded windows. Two runs on the
same machine and versions make the same tokenizer and the same data order; the weights can still
differ in the last bits (non-deterministic GPU kernels) and, without --steps, in how many steps the
time budget allowed. The weights are regenerated each time and never committed.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import random
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM  # noqa: E402

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

EOS = "<|endoftext|>"
SKIPPED_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def log(msg):
    print(f"[base-model] {msg}", flush=True)


def fail(msg):
    print(f"[base-model] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def held_out(rel_path, fraction):
    """A file is held out when the hash of its relative path falls in the first `fraction` of the range."""
    h = int.from_bytes(hashlib.sha256(rel_path.encode("utf-8")).digest()[:8], "big")
    return h < fraction * 2**64


def read_corpus(root, fraction, max_mb):
    """(train texts, held-out texts, summary) of the *.py files under root, sorted by relative path."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        paths.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    rel = sorted((str(p.relative_to(root)), p) for p in paths)
    if max_mb > 0:
        # a deterministic subset: files in hash order until the size cap
        rel.sort(key=lambda rp: hashlib.sha256(rp[0].encode("utf-8")).digest())
    train, heldout, skipped, total = [], [], 0, 0
    for r, p in rel:
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            skipped += 1
            continue
        if not text.strip():
            continue
        if max_mb > 0 and total + len(text) > max_mb * 1e6:
            break
        total += len(text)
        (heldout if held_out(r, fraction) else train).append((r, text))
    train.sort()
    heldout.sort()
    if not train or not heldout:
        fail(f"{root}: {len(train)} training and {len(heldout)} held-out files; need both (raise --held-out-fraction?)")
    summary = {
        "root": str(root),
        "files_train": len(train),
        "files_held_out": len(heldout),
        "files_unreadable": skipped,
        "chars_train": sum(len(t) for _, t in train),
        "chars_held_out": sum(len(t) for _, t in heldout),
        "held_out_files": [r for r, _ in heldout],
    }
    return [t for _, t in train], [t for _, t in heldout], summary


def train_tokenizer(texts, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    if tok.token_to_id(EOS) != 0:
        fail(f"{EOS} got id {tok.token_to_id(EOS)}, expected 0")
    return tok


def tokenizer_sample(texts, mb):
    """Texts in a fixed pseudo-random order (by content hash) up to `mb` million characters."""
    order = sorted(texts, key=lambda t: hashlib.sha256(t.encode("utf-8")).digest())
    out, total = [], 0
    for t in order:
        if out and total + len(t) > mb * 1e6:
            break
        out.append(t)
        total += len(t)
    return out


def token_stream(tok, texts, batch=256):
    """All texts encoded and concatenated, each followed by EOS, as one int64 tensor."""
    eos = tok.token_to_id(EOS)
    ids = []
    for i in range(0, len(texts), batch):
        for enc in tok.encode_batch(texts[i : i + batch], add_special_tokens=False):
            ids.extend(enc.ids)
            ids.append(eos)
    return torch.tensor(ids, dtype=torch.int64)


def lm_loss(model, x, y):
    logits = model(input_ids=x).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def windows_loss(model, stream, seq, max_windows, device, batch=16):
    """Mean next-token loss (fp32, no autocast) over non-overlapping windows from the stream's start."""
    n = min(max_windows, (len(stream) - 1) // seq)
    if n < 1:
        fail(f"a stream of {len(stream)} tokens has no window of {seq + 1}")
    model.eval()
    total, count = 0.0, 0
    for i in range(0, n, batch):
        starts = torch.arange(i, min(n, i + batch)) * seq
        idx = starts[:, None] + torch.arange(seq + 1)[None, :]
        w = stream[idx].to(device)
        loss = lm_loss(model, w[:, :-1], w[:, 1:])
        total += loss.item() * w.shape[0]
        count += w.shape[0]
    model.train()
    return total / count, n * seq


def lr_at(step, progress, a):
    warm = min(1.0, (step + 1) / max(1, a.warmup))
    return a.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def parameter_groups(model, weight_decay):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


def check_reload(out, model, tok, sample_ids, sample_text, device):
    """Reload the saved directory; compare logits and tokenizer ids with the ones in memory."""
    reloaded = LlamaForCausalLM.from_pretrained(str(out)).to(device).float()  # saved in fp32
    reloaded.eval()
    model.eval()
    with torch.no_grad():
        x = sample_ids[None, :].to(device)
        diff = (reloaded(input_ids=x).logits - model(input_ids=x).logits).abs().max().item()
    same_ids = Tokenizer.from_file(str(out / "tokenizer.json")).encode(sample_text).ids == tok.encode(sample_text).ids
    check = {"reloaded_logits_max_abs_diff": diff, "tokenizer_ids_match": bool(same_ids)}
    try:  # how transformers reads the tokenizer directory: recorded, not required (we read tokenizer.json)
        from transformers import AutoTokenizer

        hf_tok = AutoTokenizer.from_pretrained(str(out))
        check["transformers_tokenizer"] = {
            "class": type(hf_tok).__name__,
            "ids_match": hf_tok(sample_text, add_special_tokens=False)["input_ids"] == tok.encode(sample_text).ids,
            "eos_token_id": hf_tok.eos_token_id,
        }
    except Exception as e:
        check["transformers_tokenizer"] = {"error": f"{type(e).__name__}: {e}"}
    return check


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--minutes", type=float, default=2.5, help="training time budget (the training loop only)")
    p.add_argument("--steps", type=int, default=0, help="train exactly this many steps instead of a time budget")
    p.add_argument("--source-dir", type=Path, default=None, help="corpus root (default: the standard library)")
    p.add_argument("--held-out-fraction", type=float, default=0.02)
    p.add_argument("--max-corpus-mb", type=float, default=0, help="cap the corpus (0: all files)")
    p.add_argument("--vocab", type=int, default=16384)
    p.add_argument("--tokenizer-mb", type=float, default=12, help="train the tokenizer on this much text")
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--kv-heads", type=int, default=0, help="0: as many as --heads")
    p.add_argument("--intermediate", type=int, default=2048)
    p.add_argument("--max-positions", type=int, default=2048)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-windows", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--log-seconds", type=float, default=15)
    a = p.parse_args()

    started = time.time()
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(a.seed)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    a.out_dir.mkdir(parents=True, exist_ok=True)

    root = a.source_dir or Path(sysconfig.get_paths()["stdlib"])
    log(f"corpus: *.py under {root} (held out: {100 * a.held_out_fraction:g} % of the files by path hash)")
    train_texts, held_texts, corpus = read_corpus(root, a.held_out_fraction, a.max_corpus_mb)
    log(
        f"corpus: {corpus['files_train']} training files ({corpus['chars_train'] / 1e6:.1f} M chars), "
        f"{corpus['files_held_out']} held out ({corpus['chars_held_out'] / 1e6:.2f} M chars)"
    )

    t = time.time()
    sample = tokenizer_sample(train_texts, a.tokenizer_mb)
    tok = train_tokenizer(sample, a.vocab)
    tok.save(str(a.out_dir / "tokenizer.json"))
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    tokenizer_config = {
        "bos_token": EOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "model_max_length": a.max_positions,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
    }
    (a.out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    train_stream = token_stream(tok, train_texts)
    held_stream = token_stream(tok, held_texts)
    log(
        f"tokenizer: byte-level BPE, {vocab_size} ids, {time.time() - t:.1f} s; "
        f"{len(train_stream) / 1e6:.2f} M training tokens, {len(held_stream) / 1e3:.0f} k held-out tokens "
        f"({corpus['chars_train'] / len(train_stream):.2f} chars a token)"
    )

    if a.hidden % a.heads:
        fail(f"--hidden {a.hidden} is not a multiple of --heads {a.heads}")
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=a.hidden,
        intermediate_size=a.intermediate,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.kv_heads or a.heads,
        head_dim=a.hidden // a.heads,
        max_position_embeddings=a.max_positions,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=0,
        eos_token_id=0,
        initializer_range=0.02,
    )
    model = LlamaForCausalLM(config).to(device)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"model: LLaMA {n_params / 1e6:.1f} M parameters (hidden {a.hidden}, {a.layers} layers, {a.heads} heads "
        f"of {a.hidden // a.heads}, MLP {a.intermediate}, vocab {vocab_size}) on {device}"
    )

    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(
        parameter_groups(model, a.weight_decay), lr=a.lr, betas=(0.9, 0.95), eps=1e-8, **fused
    )
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    gen = torch.Generator().manual_seed(a.seed)
    stream = train_stream.to(device)
    window = torch.arange(a.seq + 1, device=device)
    n_windows = len(stream) - a.seq - 1
    if n_windows < 1:
        fail(f"{len(stream)} training tokens hold no window of {a.seq + 1}")
    budget = a.minutes * 60
    budget_text = f"{a.steps} steps" if a.steps else f"{a.minutes:g} min"
    log(f"training: batch {a.batch} x seq {a.seq}, lr {a.lr:g} (warmup {a.warmup}, cosine to 10 %), budget {budget_text}")

    step, recent = 0, []
    t0 = time.time()
    next_log = t0 + a.log_seconds
    while True:
        elapsed = time.time() - t0
        progress = step / a.steps if a.steps else elapsed / budget
        if progress >= 1:
            break
        lr = lr_at(step, progress, a)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, n_windows, (a.batch,), generator=gen).to(device)
        w = stream[starts[:, None] + window[None, :]]
        with autocast:
            loss = lm_loss(model, w[:, :-1], w[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        recent.append(loss.detach())
        recent = recent[-20:]
        if time.time() >= next_log:
            mean_loss = torch.stack(recent).mean().item()
            secs = time.time() - t0
            log(
                f"step {step}: loss {mean_loss:.4f}, lr {lr:.2e}, {step * a.batch * a.seq / secs / 1e3:.0f} k tokens/s, "
                f"{secs:.0f} s of {budget_text}"
            )
            next_log = time.time() + a.log_seconds
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.time() - t0
    final_train_loss = torch.stack(recent).mean().item() if recent else float("nan")
    tokens = step * a.batch * a.seq
    log(f"trained {step} steps ({tokens / 1e6:.1f} M tokens) in {train_seconds:.0f} s; last 20 steps' loss {final_train_loss:.4f}")

    held_loss, held_tokens = windows_loss(model, held_stream, a.seq, a.eval_windows, device)
    train_loss, _ = windows_loss(model, train_stream, a.seq, a.eval_windows, device)
    log(f"held-out loss {held_loss:.4f} over {held_tokens} tokens (training windows: {train_loss:.4f})")

    generation_config = GenerationConfig(bos_token_id=0, eos_token_id=0)
    model.generation_config = generation_config
    model.save_pretrained(str(a.out_dir))
    if not (a.out_dir / "generation_config.json").exists():
        generation_config.save_pretrained(str(a.out_dir))
    for f in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        if not (a.out_dir / f).exists():
            fail(f"{a.out_dir / f} was not written")

    sample_text = held_texts[0][:2000]
    check = check_reload(a.out_dir, model, tok, held_stream[: a.seq], sample_text, device)
    log(
        f"reload check: logits differ by at most {check['reloaded_logits_max_abs_diff']:.2e}, "
        f"tokenizer ids {'match' if check['tokenizer_ids_match'] else 'DIFFER'}"
    )
    record = {
        "generator": "tools/convergence/make_base_model.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "corpus": {**corpus, "tokens_train": len(train_stream), "tokens_held_out": len(held_stream)},
        "tokenizer": {
            "type": "byte-level BPE",
            "vocab_size": vocab_size,
            "eos": EOS,
            "trained_on_chars": sum(len(t) for t in sample),
        },
        "model": {"parameters": n_params, "config": json.loads(config.to_json_string())},
        "training": {
            "steps": step,
            "tokens": tokens,
            "seconds": train_seconds,
            "tokens_per_second": tokens / max(train_seconds, 1e-9),
            "final_train_loss": final_train_loss,
        },
        "held_out": {"loss": held_loss, "tokens": held_tokens},
        "train_windows_loss": train_loss,
        "check": check,
        "total_seconds": time.time() - started,
    }
    (a.out_dir / "pretraining.json").write_text(json.dumps(record, indent=2) + "\n")
    if check["reloaded_logits_max_abs_diff"] > 1e-3 or not check["tokenizer_ids_match"]:
        fail("the saved directory does not reproduce the model in memory (see pretraining.json)")
    log(f"wrote {a.out_dir} ({time.time() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
