"""Exported batches load with ``datasets`` and go through TRL's SFT and DPO pipelines (chat
template, tokenisation, data collators) on a tiny local model, tool calls included."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
from curator_builders import (
    LINE,
    make_decision,
    make_label,
    make_task,
    make_trace,
    msg,
    shop_tools,
    thumbs,
    tool_call_msg,
)

from flywheel.demo import shop
from flywheel.designs import designs_config
from flywheel.services.curator.logic.examples import (
    Coordinates,
    CurationRules,
    LabelContext,
    from_decision,
    from_label,
)
from flywheel.services.curator.logic.records import record_from_candidate
from flywheel.services.curator.logic.writer import BatchContent
from flywheel.v1.annotation_pb2 import AnnotationKind

pytestmark = [pytest.mark.ml, pytest.mark.slow]
torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
trl = pytest.importorskip("trl")

SHARED = Path(__file__).resolve().parents[2] / "ml_fixtures.py"
RULES = CurationRules(eval_share=0.0)
DESIGNS = designs_config({"pam": {"enabled": True}})
C = Coordinates("flywheel.annotation.labels.v1", 0, 1)


def _tiny_model_dir(tmp_path: Path) -> Path:
    if SHARED.is_file():
        spec = importlib.util.spec_from_file_location("flywheel_tests_ml_fixtures", SHARED)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "build_tiny_model_dir"):
            return Path(module.build_tiny_model_dir(tmp_path))
    from flywheel.ml.corpus import load_texts
    from flywheel.ml.tiny import TinySpec, build_model, train_tokenizer

    tokenizer = train_tokenizer(load_texts()[:2000], vocab_size=512)
    model = build_model(tokenizer, TinySpec(vocab_size=512, hidden_size=64, num_layers=2,
                                            num_heads=4, intermediate_size=128,
                                            max_positions=512))
    out = tmp_path / "tiny"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _records() -> tuple[list, list]:
    rng = random.Random(0)
    candidates = []
    for i, q in enumerate(shop.sample_questions(6, seed=4)):
        decision = make_decision(make_trace(f"t{i}", q.text, shop.reference_answer(q),
                                            feedback=[thumbs()]), intent=q.intent)
        candidates += from_decision(decision, C, RULES, DESIGNS).candidates
        trace = make_trace(f"w{i}", q.text, shop.wrong_answer(q, rng))
        label = make_label(f"w{i}", AnnotationKind.ANNOTATION_KIND_CORRECT,
                           corrected=[msg("assistant", shop.reference_answer(q))])
        candidates += from_label(label, LabelContext(task=make_task(trace)), C, RULES,
                                 DESIGNS).candidates
    task = shop.agent_task(shop.sample_questions(1, seed=8)[0])
    history = [msg("user", "Hi"), msg("assistant", "Hello! How can I help?")]
    bad = [tool_call_msg("get_policy", {"topic": "returns"}),
           msg("tool", "{\"error\": \"wrong tool\"}", tool_call_id="call_0"),
           msg("assistant", "Sorry, I cannot help.")]
    good = [tool_call_msg(task.tool, task.arguments, "call_1"),
            msg("tool", "{\"ok\": true}", tool_call_id="call_1"),
            msg("assistant", task.final_answer)]
    agent = make_trace("agent", task.question.text, bad, history=history, tools=shop_tools())
    label = make_label("agent", AnnotationKind.ANNOTATION_KIND_CORRECT, corrected=good)
    candidates += from_label(label, LabelContext(decision=make_decision(agent)), C, RULES,
                             DESIGNS).candidates
    records = [record_from_candidate(c, received_at=float(i), origin="test")
               for i, c in enumerate(candidates)]
    return ([r for r in records if r.kind == "sft"], [r for r in records if r.kind == "dpo"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from flywheel.cli.datasets import export_batch
    from flywheel.db.engine import make_engine, migrate
    from flywheel.services.curator.logic.writer import BatchStore

    root = tmp_path_factory.mktemp("trl")
    url = f"sqlite:///{root / 'flywheel.db'}"
    migrate(url)
    store = BatchStore(make_engine(url), root / "artifacts")
    store.ensure_model_line(LINE, "tiny")
    sft, dpo = _records()
    row = store.write(BatchContent(model_line=LINE, sft=sft, dpo=dpo))
    paths = export_batch(store, row, root / "export", "jsonl")
    return {"sft": Path(paths["sft"]), "dpo": Path(paths["dpo"]),
            "model": _tiny_model_dir(root)}


def test_rows_load_with_tool_calls_and_masks(exported: dict[str, Path]) -> None:
    sft = datasets.load_dataset("json", data_files=str(exported["sft"]), split="train")
    dpo = datasets.load_dataset("json", data_files=str(exported["dpo"]), split="train")
    assert sft.num_rows == 14 and dpo.num_rows == 7  # corrections equal the thumbs-up rows
    agent = [r for r in sft if r["tools"] and len(r["messages"]) == 7]
    assert agent and agent[0]["messages"][4]["tool_calls"][0]["function"]["name"]
    assert any(r["loss_masks"] for r in sft)
    assert any(r["tools"] and r["chosen"][0]["tool_calls"] for r in dpo)


def _args(cls, out: Path, **kw):  # noqa: ANN001, ANN003, ANN202
    return cls(output_dir=str(out), per_device_train_batch_size=4, max_steps=1, report_to=[],
               save_strategy="no", logging_strategy="no", use_cpu=True, dataloader_num_workers=0,
               **kw)


def test_trl_sft_collator_and_one_step(exported: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(exported["model"])
    model = AutoModelForCausalLM.from_pretrained(exported["model"])
    dataset = datasets.load_dataset("json", data_files=str(exported["sft"]), split="train")
    trainer = SFTTrainer(model=model, args=_args(SFTConfig, tmp_path, max_length=512,
                                                 assistant_only_loss=True),
                         train_dataset=dataset, processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 4
    assert (batch["labels"] != -100).any() and (batch["labels"] == -100).any()
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))


def test_trl_dpo_collator(exported: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(exported["model"])
    model = AutoModelForCausalLM.from_pretrained(exported["model"])
    dataset = datasets.load_dataset("json", data_files=str(exported["dpo"]), split="train")
    trainer = DPOTrainer(model=model, args=_args(DPOConfig, tmp_path, max_length=512),
                         train_dataset=dataset, processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 8  # chosen then rejected
    assert batch["completion_mask"].sum() > 0
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
