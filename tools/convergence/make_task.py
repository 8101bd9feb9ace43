#!/usr/bin/env python3
"""Makes the fine-tuning task of the convergence experiment: write a function's body from its signature
and docstring, on a body of code the base model never saw, split into train and evaluation sets by file.

Usage:  python3 make_task.py OUT_DIR [--package torch | --source-dir DIR] [--eval-fraction 0.1] [...]
        (Python's standard library only; --help lists every option)

Source: the *.py files of an installed package (default torch, found without importing it) or of any
directory, sorted by path. The base model (make_base_model.py) is pretrained on the standard library,
so a site-packages package is held-out code in a domain of its own.

Examples: every function or method with a docstring and a body after it. The prompt is a comment with
the file's path, then the decorators, the signature and the docstring; the response is the rest of
the body (both dedented to the `def`). Bodies of only `pass`, `...` or `raise NotImplementedError`,
bodies shorter than --min-body-lines or longer than --max-body-lines, and examples longer than
--max-chars are left out. Files that do not parse are skipped and counted.

Split: a file goes to the evaluation set when the hash of its relative path falls in the first
--eval-fraction of the range (independent of listing order), so no file feeds both sides. Training
examples stay in file order (the trainer shuffles them by its seed); evaluation examples are shuffled
with --seed, since the trainer evaluates on the first rows of the evaluation file, and capped at
--max-eval-examples. --max-train-examples keeps whole training files, in hash order, up to the cap.

Output: OUT_DIR/train.jsonl and OUT_DIR/eval.jsonl ({"prompt", "response"} lines, the format of
`lsp-offload train --data` and `--eval-data`) and OUT_DIR/task.json (source, counts, the evaluation
files). Deterministic: the same source files give byte-identical output.
"""

import argparse
import ast
import concurrent.futures
import functools
import hashlib
import importlib.util
import json
import os
import random
import sys
from pathlib import Path

SKIPPED_DIRS = {"__pycache__"}


def log(msg):
    print(f"[task] {msg}", flush=True)


def fail(msg):
    print(f"[task] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def path_hash(rel_path):
    return int.from_bytes(hashlib.sha256(rel_path.encode("utf-8")).digest()[:8], "big")


def package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        fail(f"no installed package '{name}' (give --source-dir)")
    return Path(list(spec.submodule_search_locations)[0])


def package_version(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # a directory that is no installed distribution has none
        return None


def trivial(body):
    """A body that is only `pass`, `...` or a `raise NotImplementedError`."""
    if len(body) != 1:
        return False
    s = body[0]
    if isinstance(s, ast.Pass):
        return True
    if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is Ellipsis:
        return True
    if isinstance(s, ast.Raise) and s.exc is not None:
        exc = s.exc.func if isinstance(s.exc, ast.Call) else s.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def dedent(lines, indent):
    """The lines without the def's indentation; None when a non-blank line is indented less."""
    out = []
    for line in lines:
        if line.startswith(indent):
            out.append(line[len(indent) :])
        elif not line.strip():
            out.append(line.lstrip(" \t"))
        else:
            return None
    return "".join(out)


def examples_of(rel_path, source, a):
    """The prompt/response examples of one file's functions, in source order."""
    tree = ast.parse(source)
    # ast counts lines at "\n" only (read_text already turned "\r\n" into "\n"); str.splitlines would
    # also split at form feeds and other separators that some sources contain
    lines = [line + "\n" for line in source.split("\n")]
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if ast.get_docstring(node) is None or len(node.body) < 2 or trivial(node.body[1:]):
            continue
        doc = node.body[0]
        # the docstring must end its line and the body start on the next (no `"""doc"""; x = 1`)
        if node.body[1].lineno <= doc.end_lineno:
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        def_line = lines[node.lineno - 1]
        indent = def_line[: len(def_line) - len(def_line.lstrip())]
        head = dedent(lines[first - 1 : doc.end_lineno], indent)
        body = dedent(lines[doc.end_lineno : node.end_lineno], indent)
        if head is None or body is None:
            continue
        if not (a.min_body_lines <= len(lines[doc.end_lineno : node.end_lineno]) <= a.max_body_lines):
            continue
        prompt = f"# {rel_path}\n{head}"
        response = body if body.endswith("\n") else body + "\n"
        if len(prompt) + len(response) > a.max_chars:
            continue
        out.append((node.lineno, {"prompt": prompt, "response": response}))
    return [e for _, e in sorted(out, key=lambda x: x[0])]


def file_examples(file, a):
    """examples_of for (relative path, path); None when the file does not read or parse."""
    rel, path = file
    try:
        return examples_of(rel, path.read_text(encoding="utf-8"), a)
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError, RecursionError):
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out_dir", type=Path)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--package", default="torch", help="installed package whose sources are the task")
    src.add_argument("--source-dir", type=Path, help="a directory of *.py files instead of a package")
    p.add_argument("--eval-fraction", type=float, default=0.1)
    p.add_argument("--max-eval-examples", type=int, default=512)
    p.add_argument("--max-train-examples", type=int, default=8000, help="0: no cap")
    p.add_argument("--min-body-lines", type=int, default=2)
    p.add_argument("--max-body-lines", type=int, default=40)
    p.add_argument("--max-chars", type=int, default=1500, help="longest prompt + response kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="processes parsing the files (0: one per core)")
    a = p.parse_args()

    root = a.source_dir if a.source_dir else package_dir(a.package)
    if not root.is_dir():
        fail(f"{root} is not a directory")
    name = root.name if a.source_dir else a.package
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        paths.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    files = sorted((f"{name}/{p.relative_to(root).as_posix()}", p) for p in paths)
    log(f"source: {len(files)} *.py files under {root}")

    train_files, eval_files, unparsed = [], [], 0
    with concurrent.futures.ProcessPoolExecutor(max_workers=a.workers or None) as pool:
        parsed = list(pool.map(functools.partial(file_examples, a=a), files, chunksize=16))
    for (rel, _), examples in zip(files, parsed):
        if examples is None:
            unparsed += 1
            continue
        if not examples:
            continue
        is_eval = path_hash(rel) < a.eval_fraction * 2**64
        (eval_files if is_eval else train_files).append((rel, examples))
    if not train_files or not eval_files:
        fail(f"{len(train_files)} training and {len(eval_files)} evaluation files with examples; need both")

    available_train = sum(len(e) for _, e in train_files)
    if a.max_train_examples > 0 and available_train > a.max_train_examples:
        kept, count = [], 0
        for rel, examples in sorted(train_files, key=lambda f: path_hash(f[0])):
            if count + len(examples) > a.max_train_examples:
                continue
            kept.append((rel, examples))
            count += len(examples)
        train_files = sorted(kept)
    train = [e for _, examples in train_files for e in examples]
    evaluation = [e for _, examples in eval_files for e in examples]
    random.Random(a.seed).shuffle(evaluation)
    available_eval = len(evaluation)
    evaluation = evaluation[: a.max_eval_examples]

    a.out_dir.mkdir(parents=True, exist_ok=True)
    for fname, rows in (("train.jsonl", train), ("eval.jsonl", evaluation)):
        with open(a.out_dir / fname, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    chars = lambda rows: sum(len(r["prompt"]) + len(r["response"]) for r in rows)  # noqa: E731
    manifest = {
        "generator": "tools/convergence/make_task.py",
        "task": "signature + docstring -> body",
        "source": str(root),
        "package": None if a.source_dir else a.package,
        "version": None if a.source_dir else package_version(a.package),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "files": {"source": len(files), "unparsed": unparsed, "train": len(train_files), "eval": len(eval_files)},
        "examples": {
            "train": len(train),
            "train_available": available_train,
            "eval": len(evaluation),
            "eval_available": available_eval,
        },
        "chars": {"train": chars(train), "eval": chars(evaluation)},
        "eval_files": [rel for rel, _ in eval_files],
    }
    (a.out_dir / "task.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(
        f"train: {len(train)} examples from {len(train_files)} files ({chars(train) / 1e6:.2f} M chars; "
        f"{available_train} available); eval: {len(evaluation)} of {available_eval} examples from "
        f"{len(eval_files)} other files; {unparsed} files did not parse"
    )
    log(f"wrote {a.out_dir}/train.jsonl, eval.jsonl, task.json")


if __name__ == "__main__":
    main()
