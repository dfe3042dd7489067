"""Serving benchmark: onnxruntime vs PyTorch decoding, and the HTTP server under load.

Run with ``make bench`` (all benchmarks) or ``python -m tests.bench.run serving``; the
exemplar measurement runs on its own: ``python -m tests.bench.bench_serving exemplars``.

1. Decoding speed at batch 1 on the same prompts (eight shop questions, greedy, up to
   ``NEW_TOKENS`` tokens): PyTorch ``generate`` (KV cache) against onnxruntime over the exported
   artifact (KV cache), both at 1 and at 2 threads. Target: onnxruntime >= 3x PyTorch.
2. The server: ``python -m flywheel.services.serving.main`` as its own process (uvicorn, no
   broker) on a free loopback port, driven over HTTP by closed-loop clients at 1, 8 and 32
   concurrent requests for ``PHASE_S`` seconds each: requests/s, completion tokens/s and
   p50/p99 latency.
3. ``exemplars``: exact match on the shop held-out set with exemplars off and on (see
   ``exemplars_main``).

The model is the tiny demo shape (``flywheel.ml.tiny``, ~3.4M parameters) built in a temporary
directory with random weights (decoding cost does not depend on what the weights say), or
``FLYWHEEL_BENCH_MODEL_DIR``. Everything shares the machine's cores with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NEW_TOKENS = 64
PHASE_S = float(os.environ.get("FLYWHEEL_BENCH_PHASE_S", "15"))
CONCURRENCY = (1, 8, 32)
HTTP_MAX_TOKENS = 32


def _console() -> Any:
    from rich.console import Console

    return Console(width=120)


def bench_model_dir(tmp: Path) -> Path:
    """``FLYWHEEL_BENCH_MODEL_DIR``, else the tiny demo shape with random weights."""
    given = os.environ.get("FLYWHEEL_BENCH_MODEL_DIR")
    if given:
        return Path(given)
    from flywheel.ml.tiny import init_tiny

    return init_tiny(tmp / "tiny", pretrain_steps=0)


def _prompts(n: int = 8) -> list[list[dict[str, Any]]]:
    from flywheel.demo.shop import question_messages, sample_questions

    return [question_messages(q) for q in sample_questions(n, seed=5, split="train")]


# -- 1. decoding speed ----------------------------------------------------------------------------

@dataclass
class Speed:
    runtime: str
    threads: int
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _torch_runner(model_dir: Path, prompts: list) -> Any:
    import torch

    from flywheel.ml.chat import prompt_ids
    from flywheel.ml.loading import eos_token_ids, load_model, load_tokenizer

    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    eos = eos_token_ids(model, tok)
    ids = [prompt_ids(tok, p) for p in prompts]
    kwargs = dict(max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=eos, pad_token_id=tok.pad_token_id)

    def run() -> list[list[int]]:
        outputs = []
        with torch.no_grad():
            for row in ids:
                out = model.generate(torch.tensor([row]), attention_mask=torch.ones(1, len(row), dtype=torch.long),
                                     **kwargs)
                new = out[0, len(row):].tolist()
                outputs.append(new[:next((i for i, t in enumerate(new) if t in eos), len(new))])
        return outputs

    return run


def _ort_runner(artifact: Path, prompts: list, threads: int) -> Any:
    from flywheel.ml.ort_runtime import OrtGenerator

    gen = OrtGenerator(artifact, threads=threads)

    def run() -> list[list[int]]:
        return [gen.generate([p], max_new_tokens=NEW_TOKENS)[0].token_ids for p in prompts]

    return run


def _timed(run: Any) -> tuple[float, list[list[int]]]:
    started = time.perf_counter()
    out = run()
    return time.perf_counter() - started, out


def decoding_speed(model_dir: Path, root: Path, rounds: int = 3) -> list[tuple[Speed, Speed, bool]]:
    """(PyTorch, onnxruntime, same tokens?) at 1 and 2 threads.

    The two runtimes alternate for ``rounds`` rounds over the same prompts (so load from other
    processes hits both alike); each side reports its median round.
    """
    import torch

    from flywheel.ml.onnx_export import export_onnx

    artifact = export_onnx(model_dir, root).artifact_dir
    prompts = _prompts()
    torch_run = _torch_runner(model_dir, prompts)
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ort_run = _ort_runner(artifact, prompts, threads)
        torch_run(), ort_run()  # warm-up
        torch_times, ort_times = [], []
        for _ in range(rounds):
            seconds, torch_out = _timed(torch_run)
            torch_times.append(seconds)
            seconds, ort_out = _timed(ort_run)
            ort_times.append(seconds)
        tokens_t, tokens_o = sum(map(len, torch_out)), sum(map(len, ort_out))
        rows.append((Speed("pytorch generate", threads, tokens_t, statistics.median(torch_times)),
                     Speed("onnxruntime", threads, tokens_o, statistics.median(ort_times)),
                     torch_out == ort_out))
    return rows


def _speed_table(rows: list[tuple[Speed, Speed, bool]]) -> Any:
    from rich.table import Table

    table = Table(title=f"Decoding at batch 1 (KV cache both): {len(_prompts())} prompts, greedy, "
                        f"up to {NEW_TOKENS} tokens, median of 3 alternating rounds")
    for col in ("runtime", "threads", "tokens", "seconds", "tokens/s", "vs PyTorch", "same tokens"):
        table.add_column(col, justify="right" if col not in ("runtime", "same tokens") else "left")
    for torch_speed, ort_speed, same in rows:
        ratio = ort_speed.tokens_per_s / torch_speed.tokens_per_s if torch_speed.tokens_per_s else 0.0
        for s, vs in ((torch_speed, "1.00x"), (ort_speed, f"{ratio:.2f}x")):
            table.add_row(s.runtime, str(s.threads), str(s.tokens), f"{s.seconds:.2f}",
                          f"{s.tokens_per_s:,.0f}", vs, "yes" if same else "NO")
    return table


# -- 2. the HTTP server -----------------------------------------------------------------------------

@dataclass
class Load:
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: int = 0
    versions: set[str] = field(default_factory=set)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def start_server(model_dir: Path, data_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update({
        "FLYWHEEL_DATA_DIR": str(data_dir), "FLYWHEEL_LOG_LEVEL": "WARNING", "FLYWHEEL_ENV": "dev",
        "FLYWHEEL_SERVING_PORT": str(port), "FLYWHEEL_SERVING_BASE_MODEL_DIR": str(model_dir),
        "FLYWHEEL_SERVING_KAFKA": "false", "FLYWHEEL_SERVING_MAX_BATCH": "32",
        "FLYWHEEL_SERVING_THREADS": "2", "HF_HUB_OFFLINE": "1",
    })
    return subprocess.Popen([sys.executable, "-m", "flywheel.services.serving.main"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # this process's own child, by its PID
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def _client(http: Any, url: str, load: Load, prompts: list, until: float, cid: int) -> None:
    i = 0
    while time.perf_counter() < until:
        body = {"model": "shop-assistant", "messages": prompts[(cid + i) % len(prompts)],
                "max_tokens": HTTP_MAX_TOKENS, "temperature": 0.7, "seed": i, "user": f"bench-{cid}"}
        started = time.perf_counter()
        try:
            resp = await http.post(f"{url}/v1/chat/completions", json=body)
            if resp.status_code != 200:
                load.errors += 1
            else:
                data = resp.json()
                load.latencies.append(time.perf_counter() - started)
                load.tokens += data["usage"]["completion_tokens"]
                load.versions.add(data["model"])
        except Exception:  # counted: the bench reports errors instead of stopping
            load.errors += 1
        i += 1


async def _drive(url: str, concurrency: int, seconds: float) -> Load:
    import httpx

    prompts = _prompts(32)
    load = Load(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        warm_until = time.perf_counter() + 1.0
        await asyncio.gather(*(_client(http, url, Load(concurrency), prompts, warm_until, c)
                               for c in range(concurrency)))
        started = time.perf_counter()
        await asyncio.gather(*(_client(http, url, load, prompts, started + seconds, c)
                               for c in range(concurrency)))
        load.seconds = time.perf_counter() - started
    return load


def http_load(model_dir: Path, root: Path) -> list[Load]:
    from flywheel.stack.process import free_port

    port = free_port()
    proc = start_server(model_dir, root / "serving-data", port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        return [asyncio.run(_drive(url, c, PHASE_S)) for c in CONCURRENCY]
    finally:
        stop_server(proc)


def _load_table(loads: list[Load]) -> Any:
    from rich.table import Table

    table = Table(title=f"HTTP chat completions (uvicorn process, max_tokens {HTTP_MAX_TOKENS}, "
                        f"{PHASE_S:.0f} s per level)")
    for col in ("clients", "requests", "errors", "req/s", "completion tok/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for load in loads:
        table.add_row(str(load.concurrency), str(load.requests), str(load.errors),
                      f"{load.requests / load.seconds:.1f}", f"{load.tokens / load.seconds:,.0f}",
                      f"{load.pct(0.5) * 1000:.0f}", f"{load.pct(0.99) * 1000:.0f}")
    return table


def main() -> None:
    """Decoding speed and HTTP load, printed as two tables."""
    console = _console()
    tmp = Path(tempfile.mkdtemp(prefix="flywheel-bench-serving-"))
    try:
        model_dir = bench_model_dir(tmp)
        console.print(_speed_table(decoding_speed(model_dir, tmp)))
        console.print(_load_table(http_load(model_dir, tmp)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- 3. exemplars on and off ------------------------------------------------------------------------

NEW_INTENTS = ("warranty", "change_address")  # not in the release's training data


def _sft(base: Path, out: Path, steps: int, intents: tuple[str, ...], seed: int = 0) -> Path:
    """The 'current release': base + LoRA SFT on the shop task, limited to ``intents``."""
    import random

    from flywheel.demo.shop import sample_question, sft_example
    from flywheel.ml.loading import load_tokenizer
    from flywheel.ml.train import TrainConfig, merge_and_save, prepare_model, train_sft

    rng = random.Random(seed)
    examples = [sft_example(sample_question(rng, "train", rng.choice(intents))) for _ in range(2000)]
    cfg = TrainConfig(sft_steps=steps, dpo_steps=0, sft_batch_size=32, sft_learning_rate=3e-3,
                      num_threads=2, seed=seed)
    model = prepare_model(base, None, cfg)
    train_sft(model, load_tokenizer(base), examples, cfg)
    return merge_and_save(model, out, load_tokenizer(base))


def _corrections(per_intent: int, seed: int) -> list[Any]:
    """What annotators would have corrected: training-phrased questions with canonical answers."""
    import random

    from flywheel.demo.shop import INTENTS, reference_answer, sample_question
    from flywheel.services.serving.exemplars import Exemplar

    rng = random.Random(seed)
    out = []
    for intent in INTENTS:
        for i in range(per_intent):
            q = sample_question(rng, "train", intent)
            out.append(Exemplar(f"{intent}-{i}", q.text, reference_answer(q)))
    return out


def _accuracy(gen: Any, questions: list, store: Any | None) -> tuple[list[bool], float, float]:
    """Per-question correctness, mean prompt tokens, and retrieval ms per question."""
    from flywheel.demo.shop import is_correct, question_messages
    from flywheel.services.serving.exemplars import ExemplarGenerator

    renderer = ExemplarGenerator(gen, store) if store is not None else gen
    started = time.perf_counter()
    prompts = [renderer.render_chat(question_messages(q)) for q in questions]
    retrieval_ms = (time.perf_counter() - started) * 1000 / len(questions)
    answers = []
    for start in range(0, len(prompts), 32):
        answers += [g.text for g in gen.generate(prompts[start:start + 32], max_new_tokens=40)]
    correct = [is_correct(a, q) for a, q in zip(answers, questions, strict=True)]
    return correct, statistics.mean(map(len, prompts)), retrieval_ms


def exemplars_main(argv: list[str]) -> None:
    """Held-out exact match with exemplars off and on, split by intents the release knows.

    The release is the tiny base (``--base``, else built with ``--pretrain-steps``) plus
    ``--sft-steps`` of LoRA SFT on six of the eight intents; ``--per-intent`` corrections per
    intent (all eight) feed the exemplar store; the held-out set is 200 eval-phrased questions.
    """
    from rich.table import Table

    from flywheel.demo.shop import INTENTS, heldout_set
    from flywheel.ml.onnx_export import export_onnx
    from flywheel.ml.ort_runtime import OrtGenerator
    from flywheel.services.serving.exemplars import ExemplarStore, MiniLMEmbedder, NgramEmbedder

    parser = argparse.ArgumentParser(prog="bench_serving exemplars")
    parser.add_argument("--base", type=Path, default=None)
    parser.add_argument("--release", type=Path, default=None, help="use this merged model as is")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--sft-steps", type=int, nargs="+", default=[100])
    parser.add_argument("--per-intent", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    console = _console()
    work = args.work or Path(tempfile.mkdtemp(prefix="flywheel-bench-exemplars-"))
    base = args.base
    if base is None and args.release is None:
        from flywheel.ml.tiny import init_tiny

        base = init_tiny(work / "base", pretrain_steps=args.pretrain_steps)
    known = tuple(i for i in INTENTS if i not in NEW_INTENTS)
    releases = {"given": args.release} if args.release else {
        f"sft {s} steps": _sft(base, work / f"release-{s}", s, known) for s in args.sft_steps}
    questions = heldout_set()
    corrections = _corrections(args.per_intent, seed=3)
    embedders = {"minilm": MiniLMEmbedder(threads=2), "ngram": NgramEmbedder()}
    table = Table(title=f"Exemplars on the shop held-out set ({len(questions)} questions, "
                        f"{len(corrections)} corrections; new intents: {', '.join(NEW_INTENTS)})")
    for col in ("release", "exemplars", "all", "known intents", "new intents", "prompt tokens", "ms/query"):
        table.add_column(col, justify="left" if col in ("release", "exemplars") else "right")
    new_mask = [q.intent in NEW_INTENTS for q in questions]
    for name, model_dir in releases.items():
        gen = OrtGenerator(export_onnx(model_dir, work).artifact_dir, threads=2)
        conditions: list[tuple[str, Any]] = [("off", None)]
        for emb_name, emb in embedders.items():
            for k in (1, 2):
                store = ExemplarStore(emb, k=k, min_similarity=0.5 if emb_name == "minilm" else 0.3)
                for ex in corrections:
                    store.add(ex)
                conditions.append((f"{emb_name} k={k}", store))
        for cond, store in conditions:
            correct, tokens, ms = _accuracy(gen, questions, store)
            new = [c for c, m in zip(correct, new_mask) if m]
            old = [c for c, m in zip(correct, new_mask) if not m]
            table.add_row(name, cond, f"{statistics.mean(correct):.3f}", f"{statistics.mean(old):.3f}",
                          f"{statistics.mean(new):.3f}", f"{tokens:.0f}", f"{ms:.1f}")
            console.print(f"{name} / {cond}: {statistics.mean(correct):.3f}")
    console.print(table)


if __name__ == "__main__":
    if sys.argv[1:2] == ["exemplars"]:
        exemplars_main(sys.argv[2:])
    else:
        main()
