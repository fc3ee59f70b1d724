"""Quality and speed of the shipped sentiment and stance models against their baselines.

Run: python bench/nlp_quality.py [--skip-speed] [--speed-only] [--skip-kk-ru] [--lang en|ar|zh]

Quality, on validation splits in ../shared/data (or ELSHI_SHARED_DATA), baselines trained
in the same run (needs scikit-learn, the `train` extra):
  kk      KazSAnDRA polarity validation macro-F1: shipped model vs plain TF-IDF word
          unigram+bigram logistic regression trained on KazSAnDRA train; the published
          TF-IDF baseline (0.74) is printed for reference. Target >= 0.74.
  ru      RuSentNE-2023 validation, macro-F1 over the positive and negative classes:
          shipped stance model vs the majority class and vs the shipped sentence model
          that ignores the target. Target > 0.41.
  en      SemEval-2017 Task 4A / TweetEval validation (2,000 tweets): shipped model vs
          VADER (the previous English method) vs the TF-IDF word 1-2 gram LR baseline
          trained on the shared train split; macro-F1 and macro-recall (TweetEval).
  ar      ArSarcasm-v2 validation (1,301 tweets): shipped model vs that baseline and vs
          "neutral for everything" (the previous Arabic answer); macro-F1 and F1 over
          positive and negative (the WANLP 2021 shared task's metric).
  zh      ChnSentiCorp validation (1,200 reviews): no model ships (non-commercial data);
          the model `elshi train sentiment --lang zh` would build is trained in this run
          on the train split and scored, against the same baseline.
Speed: texts of tweet length (about 200 characters) from the validation texts, or
generated ones when the shared data is absent; single process, one core.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from elshi.nlp.sentiment import analyse_batch, load_model  # noqa: E402

KK_TARGET = 0.74
RU_TARGET = 0.41
PUBLISHED_KK_TFIDF = 0.74


def train_script() -> ModuleType:
    """Import scripts/train_sentiment.py for its data readers and metrics."""
    spec = importlib.util.spec_from_file_location(
        "train_sentiment", ROOT / "scripts" / "train_sentiment.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_sentiment"] = module
    spec.loader.exec_module(module)
    return module


def verdict(ok: bool) -> str:
    """Return PASS or FAIL."""
    return "PASS" if ok else "FAIL"


def bench_kk(t: ModuleType, data: Path) -> bool:
    """Print Kazakh scores; return whether the target is met."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train = t.kazsandra_polarity("train", data)
    valid = t.kazsandra_polarity("valid", data)
    y = np.array([ex.label for ex in valid])
    probs = t.predict(load_model("sentiment-kk"), t.docs_of([ex.text for ex in valid]))
    shipped = t.f1_macro(y, t.polarity(probs), [t.NEG, t.POS])
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train = vec.fit_transform([ex.text for ex in train])
    clf = LogisticRegression(max_iter=2000).fit(x_train, [ex.label for ex in train])
    base_pred = clf.predict(vec.transform([ex.text for ex in valid]))
    baseline = t.f1_macro(y, np.asarray(base_pred), [t.NEG, t.POS])
    # The review data is 82% positive; shifting the log-odds toward that prior (the shift
    # tuned on this same validation split, so optimistic) shows what in-domain use could get.
    margin = np.log(probs[:, t.POS]) - np.log(probs[:, t.NEG])
    shifted = max(
        (t.f1_macro(y, np.where(margin + s >= 0, t.POS, t.NEG), [t.NEG, t.POS]), s)
        for s in np.arange(0.0, 2.01, 0.1)
    )
    print(f"kk  KazSAnDRA validation (n={len(valid)}), polarity macro-F1")
    print(f"    shipped model                          {shipped:.4f}")
    print(f"    baseline: TF-IDF word 1-2 gram LR      {baseline:.4f}  (trained in this run)")
    print(f"    published TF-IDF baseline (reference)  {PUBLISHED_KK_TFIDF:.2f}")
    print(
        f"    shipped + review prior shift {shifted[1]:.1f}       {shifted[0]:.4f}  "
        "(shift tuned on validation: optimistic, not shipped)"
    )
    ok = shipped >= KK_TARGET
    print(f"    {verdict(ok)}: shipped {shipped:.4f} >= {KK_TARGET}")
    return ok


def bench_ru(t: ModuleType, data: Path) -> bool:
    """Print Russian stance scores; return whether the target is met."""
    train = t.rusentne("train", data)
    valid = t.rusentne("valid", data)
    seen = {ex.text for ex in train}
    unseen = np.array([ex.text not in seen for ex in valid])
    y = np.array([ex.label for ex in valid])
    stance_model = load_model("stance-ru")
    scores = t.stance_scores(stance_model, train, valid)
    sentence_model = load_model("sentiment-ru")
    sent_pred = t.labels_of(
        sentence_model, t.predict(sentence_model, t.docs_of([ex.text for ex in valid]))
    )
    majority = np.full(len(valid), np.bincount([ex.label for ex in train]).argmax())
    labels = [t.NEG, t.POS]
    print(f"ru  RuSentNE-2023 validation (n={len(valid)}), macro-F1 over positive and negative")
    print(f"    {'':38} {'all':>7} {'unseen sentences (n=' + str(int(unseen.sum())) + ')':>28}")
    f1 = t.f1_macro
    rows = [
        (
            "shipped stance model",
            scores["pos_neg_macro_f1"],
            scores["pos_neg_macro_f1_unseen_sentences"],
        ),
        (
            "baseline: sentence model, no target",
            f1(y, sent_pred, labels),
            f1(y[unseen], sent_pred[unseen], labels),
        ),
        (
            "baseline: majority class (neutral)",
            f1(y, majority, labels),
            f1(y[unseen], majority[unseen], labels),
        ),
    ]
    for name, overall, fresh in rows:
        print(f"    {name:38} {overall:7.4f} {fresh:28.4f}")
    print(f"    three-class macro-F1 of the stance model: {scores['three_class_macro_f1']:.4f}")
    # Sentence sentiment (what `analyse(text, "ru")` answers): entity labels collapsed per
    # sentence, on the validation sentences that are not in train.
    sent = [ex for ex in t.sentence_labels(valid) if ex.text not in seen]
    ys = np.array([ex.label for ex in sent])
    ps = t.labels_of(sentence_model, t.predict(sentence_model, t.docs_of([ex.text for ex in sent])))
    print(
        f"    sentence sentiment, {len(sent)} unseen validation sentences: macro-F1 "
        f"{f1(ys, ps, [0, 1, 2]):.4f}, pos/neg {f1(ys, ps, labels):.4f}"
    )
    ok = scores["pos_neg_macro_f1"] > RU_TARGET
    print(f"    {verdict(ok)}: shipped {scores['pos_neg_macro_f1']:.4f} > {RU_TARGET}")
    return ok


def post_baseline(train: list, valid: list) -> np.ndarray:
    """Predict validation labels with the TF-IDF word 1-2 gram LR baseline (same as kk)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train = vec.fit_transform([ex.text for ex in train])
    clf = LogisticRegression(max_iter=2000).fit(x_train, [ex.label for ex in train])
    return np.asarray(clf.predict(vec.transform([ex.text for ex in valid])))


def vader_labels(texts: list[str]) -> np.ndarray:
    """Return VADER labels (compound >= 0.05 positive, <= -0.05 negative), 0/1/2."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    compound = np.array([analyser.polarity_scores(t)["compound"] for t in texts])
    return np.where(compound >= 0.05, 2, np.where(compound <= -0.05, 0, 1))


def bench_post(t: ModuleType, data: Path, lang: str) -> bool:
    """Print en, ar or zh scores on validation; return whether the model beats the baseline."""
    from elshi.nlp import sentiment_train as st

    train = t.post_split(lang, "train", data)
    valid = t.post_split(lang, "validation", data)
    y = np.array([ex.label for ex in valid])
    labels = sorted({int(v) for v in y})
    if lang == "zh":
        model = st.train_language("zh", train)
        name = "operator model (trained in this run, not shipped)"
    else:
        model = load_model(f"sentiment-{lang}")
        name = "shipped model"
    rows = [(name, st.predict_labels(model, [ex.text for ex in valid]))]
    rows.append(("baseline: TF-IDF word 1-2 gram LR", post_baseline(train, valid)))
    if lang == "en":
        rows.append(("VADER (previous English method)", vader_labels([ex.text for ex in valid])))
    if lang == "ar":
        rows.append(('"neutral" for all (previous Arabic)', np.full(len(y), t.NEU)))
    title = {"en": "SemEval-2017 4A / TweetEval", "ar": "ArSarcasm-v2", "zh": "ChnSentiCorp"}
    print(f"{lang}  {title[lang]} validation (n={len(valid)}), {len(labels)} classes")
    print(f"    {'':50} {'macro-F1':>9} {'macro-R':>8} {'F1 pos/neg':>11}")
    for label, pred in rows:
        print(
            f"    {label:50} {st.f1_macro(y, pred, labels):9.4f} "
            f"{st.recall_macro(y, pred, labels):8.4f} {st.f1_macro(y, pred, [0, 2]):11.4f}"
        )
    mine = st.f1_macro(y, rows[0][1], labels)
    base = st.f1_macro(y, rows[1][1], labels)
    ok = mine > base
    print(f"    {verdict(ok)}: {mine:.4f} > baseline {base:.4f}")
    return ok


def speed_texts(data: Path | None, n: int) -> dict[str, list[str]]:
    """Return about n tweet-length texts per language."""
    rng = random.Random(7)
    pools: dict[str, list[str]] = {}
    if data is not None and data.is_dir():
        t = train_script()
        pools["kk"] = [ex.text for ex in t.kazsandra_polarity("valid", data)]
        pools["ru"] = sorted({ex.text for ex in t.rusentne("valid", data)})
    else:
        pools["kk"] = ["Керемет қосымша, маған ұнады", "Өте жаман, жұмыс істемейді"]
        pools["ru"] = ["Министр похвалил соглашение", "Власти осудили нападение на посольство"]
    pools["ar"] = [
        "شكرا للسفارة على المساعدة الرائعة اليوم",
        "الطابور في القنصلية سيء جدا ولا أحد يرد على الهاتف",
        "التقى الوزير بنظيره لبحث التجارة والنقل",
    ]
    pools["en"] = [
        "The embassy team was wonderful and helpful today.",
        "Terrible queue at the consulate, nobody answered the phone.",
        "The minister met his counterpart to discuss trade and transit.",
    ]
    if data is not None and data.is_dir():
        for lang in ("en", "ar"):
            pools[lang] = [ex.text for ex in t.post_split(lang, "validation", data)]
    out: dict[str, list[str]] = {}
    for lang, pool in pools.items():
        texts = []
        for _ in range(n):
            parts: list[str] = []
            while sum(len(p) + 1 for p in parts) < 200:
                parts.append(rng.choice(pool))
            texts.append(" ".join(parts)[:280])
        out[lang] = texts
    return out


def bench_speed(data: Path | None, n: int = 4000) -> None:
    """Print texts per second of analyse_batch per language (one process, one core)."""
    texts = speed_texts(data, n)
    print(f"speed: analyse_batch, batches of 1000, {n} texts per language, about 200 characters")
    print("    texts/s per core = texts / CPU seconds of this process; wall = texts / elapsed")
    for lang, items in texts.items():
        analyse_batch(items[:50], lang)  # load the model outside the timing
        for explain in (True, False):
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(items), 1000):
                analyse_batch(items[i : i + 1000], lang, explain=explain)
            per_core = len(items) / (time.process_time() - cpu)
            per_wall = len(items) / (time.perf_counter() - wall)
            chars = sum(map(len, items)) / len(items)
            mode = "on " if explain else "off"
            print(
                f"    {lang} evidence={mode} {per_core:8.0f} texts/s per core"
                f" {per_wall:8.0f} wall  (mean {chars:.0f} chars)"
            )


def main() -> int:
    """Run the quality and speed benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument(
        "--lang", choices=["en", "ar", "zh"], action="append", help="Only these post languages."
    )
    parser.add_argument("--skip-kk-ru", action="store_true", help="Leave out kk and ru.")
    args = parser.parse_args()
    data = Path(os.environ.get("ELSHI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    ok = True
    if not args.speed_only:
        if not data.is_dir():
            print(f"shared data not found at {data} (set ELSHI_SHARED_DATA): no quality figures")
        else:
            t = train_script()
            if not args.skip_kk_ru:
                ok = bench_kk(t, data) & bench_ru(t, data)
            for lang in args.lang or ["en", "ar", "zh"]:
                ok &= bench_post(t, data, lang)
    if not args.skip_speed:
        bench_speed(data if data.is_dir() else None)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
