"""Build ``fixtures/tiny-toxic-classifier``: a tiny BERT sequence classifier for ``hf:`` scorer tests.

    $ python -m harness.fixture_classifier [--out fixtures]

Distils the offline profanity scorer (alt-profanity-check) into a 2-layer BERT with two softmax
classes (``non-toxic``, ``toxic``) on the fixture corpus, reusing ``detoxify-tiny``'s WordPiece
vocabulary. Deterministic on CPU (fixed seeds, one thread); about a minute on 2 cores. It also
writes ``heldout.jsonl``: corpus texts kept out of training, labelled by the profanity scorer
(``{"text", "label"}``), for ``harness scorer-check``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from harness.errors import HarnessError

LABELS = ("non-toxic", "toxic")
SHAPE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
             max_position_embeddings=128)
TRAIN = dict(n_train=3000, n_heldout=300, steps=400, batch=32, lr=1e-3, max_length=64)
NAME = "tiny-toxic-classifier"


def _texts(docs: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Answers (the text after a Q&A document's question) and neutral documents, split train/held-out."""
    from harness.fixtures import EVERYDAY, RUDE

    pool = sorted({(d.split("?", 1)[1] if "?" in d else d).strip() for d in docs} - {""})
    random.Random(seed).shuffle(pool)
    held = pool[:TRAIN["n_heldout"]]
    return pool[TRAIN["n_heldout"]:TRAIN["n_heldout"] + TRAIN["n_train"]] + RUDE + EVERYDAY, held


def build_classifier(out_dir: Path, docs: list[str] | None = None, seed: int = 0,
                     steps: int | None = None) -> dict:
    """Train and save the classifier under ``out_dir/tiny-toxic-classifier``; returns its metrics."""
    import torch
    from profanity_check import predict_prob
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from harness.fixtures import TRAIN as LM_TRAIN
    from harness.fixtures import _seed_all
    from harness.scorer_check import auroc

    out_dir = Path(out_dir)
    vocab_dir, target = out_dir / "detoxify-tiny", out_dir / NAME
    if not (vocab_dir / "vocab.txt").is_file():
        raise HarnessError(f"{vocab_dir}: no vocab.txt. The classifier reuses detoxify-tiny's vocabulary: build it "
                           "first with `python -m harness.fixtures build --only corpus,model,detoxify`.")
    if docs is None:
        corpus = out_dir / "corpus" / "train.txt"
        if not corpus.is_file():
            raise HarnessError(f"{corpus}: not found. Build the corpus first: `python -m harness.fixtures build "
                               "--only corpus`.")
        docs = corpus.read_text(encoding="utf-8").splitlines()
    train, held = _texts(docs, seed)
    _seed_all(seed, LM_TRAIN["threads"])
    target.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(vocab_dir))
    tok.model_max_length = SHAPE["max_position_embeddings"]
    tok.save_pretrained(str(target))
    cfg = BertConfig(vocab_size=len(tok), num_labels=len(LABELS), problem_type="single_label_classification",
                     id2label=dict(enumerate(LABELS)), label2id={c: i for i, c in enumerate(LABELS)}, **SHAPE)
    model = BertForSequenceClassification(cfg)
    p_toxic = torch.tensor(predict_prob(train), dtype=torch.float32)
    soft = torch.stack([1 - p_toxic, p_toxic], dim=1)  # distil the teacher's probabilities
    ids = tok(train, truncation=True, max_length=TRAIN["max_length"])["input_ids"]
    opt = torch.optim.AdamW(model.parameters(), lr=TRAIN["lr"], weight_decay=0.01)
    gen, model = torch.Generator().manual_seed(seed), model.train()
    losses = []
    for step in range(steps or TRAIN["steps"]):
        idx = torch.randint(len(train), (TRAIN["batch"],), generator=gen).tolist()
        batch = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(logits, soft[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    model.save_pretrained(str(target), safe_serialization=True)
    labels = [int(p >= 0.5) for p in predict_prob(held)]
    with open(target / "heldout.jsonl", "w", encoding="utf-8") as fh:
        for text, label in zip(held, labels):
            fh.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    with torch.no_grad():
        enc = tok(held, padding=True, truncation=True, max_length=TRAIN["max_length"], return_tensors="pt")
        got = torch.softmax(model(**enc).logits, dim=-1)[:, 1].tolist()
    report = {"n_train": len(train), "n_heldout": len(held), "heldout_toxic": sum(labels), "seed": seed,
              "steps": len(losses), "loss_first": losses[0], "loss_last": sum(losses[-20:]) / len(losses[-20:]),
              "params": sum(p.numel() for p in model.parameters()),
              "heldout_accuracy_at_0.5": sum((g >= 0.5) == bool(y) for g, y in zip(got, labels)) / len(labels),
              "heldout_auroc": auroc(got, labels)}
    (target / "training_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.fixture_classifier", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("fixtures"), help="fixtures directory (default: fixtures)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="training steps (smoke builds); default full")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(build_classifier(args.out, seed=args.seed, steps=args.steps), indent=2, sort_keys=True))
    except HarnessError as exc:
        print(f"harness fixture_classifier: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
