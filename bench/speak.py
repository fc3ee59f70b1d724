"""Benchmark Speak: length checks per channel rule, and publishing throughput.

Run: python bench/speak.py [--texts 20000] [--publications 300]

Phases:
  length   count mixed kk/ru/en/zh/ar texts with emoji and links under every channel rule
           (X weighted, graphemes, graphemes with links, UTF-16); texts per second per rule
  publish  approve one statement and publish it to N news-page accounts on a fresh SQLite
           database through the same path the worker uses (claim, approval digest check,
           record); publications per second

Targets: length checks >= 5,000 texts/s per rule (the server counts each version on every
page view and save; the browser counts each keystroke itself); publishing >= 20
publications/s, far above any platform's own rate limit.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SAMPLES = [
    "Қазақстан елшілігі Берлинде мәдениет күндерін өткізеді 🇰🇿",
    "Посольство Казахстана проводит дни культуры в Берлине https://example.org/news/1",
    "The Embassy of Kazakhstan holds culture days in Berlin 👨‍👩‍👧 all welcome",
    "哈萨克斯坦驻柏林大使馆举办文化日活动，欢迎大家参加。",
    "سفارة كازاخستان في برلين تنظم أيام الثقافة 👍🏽",
]


def bench_length(n: int) -> None:
    """Print texts per second for each counting rule."""
    from elshi.speak.text import Limit

    rng = random.Random(7)
    texts = [" ".join(rng.choice(SAMPLES) for _ in range(rng.randint(1, 4))) for _ in range(n)]
    rules = {
        "x_weighted (X)": Limit(280, "x_weighted"),
        "graphemes (Bluesky)": Limit(300, "graphemes"),
        "graphemes+links (Mastodon)": Limit(500, "graphemes", urls_as=23),
        "utf16 (Telegram)": Limit(4096, "utf16"),
    }
    for name, limit in rules.items():
        start = time.perf_counter()
        over = sum(1 for t in texts if not limit.check(t).ok)
        took = time.perf_counter() - start
        print(f"length  {name:28s} {n / took:12,.0f} texts/s  ({over:,} of {n:,} too long)")


def bench_publish(n: int) -> None:
    """Print publications per second through the worker's publish path on SQLite."""
    from elshi.accounts.service import Principal
    from elshi.db import Database
    from elshi.migrate import migrate
    from elshi.missions import service as missions
    from elshi.settings import load_settings
    from elshi.speak import flows, service
    from elshi.speak.channels.base import ChannelContext

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp), demo=True)
        db = Database(settings)
        migrate(db.engine)
        actor = Principal.system("bench")
        with db.session() as s:
            mission = missions.create_mission(db=s, slug="bench", name="Bench")
            ids = [
                service.add_account(
                    db=s,
                    actor=actor,
                    settings=settings,
                    mission_id=mission.id,
                    channel="web",
                    name=f"page {i}",
                    config={},
                    secrets={},
                ).id
                for i in range(n)
            ]
            st = service.create_statement(
                db=s,
                actor=actor,
                mission_id=mission.id,
                title="bench",
                lang="kk",
                text=SAMPLES[0],
            )
            service.submit(db=s, actor=actor, statement_id=st.id)
            service.decide(db=s, actor=actor, statement_id=st.id, approve=True)
            pubs = [
                p.id
                for p in service.schedule(db=s, actor=actor, statement_id=st.id, account_ids=ids)
            ]
        ctx = ChannelContext(settings=settings, db=db)
        start = time.perf_counter()
        statuses = [flows.send_publication(db, pid, ctx) for pid in pubs]
        took = time.perf_counter() - start
        ctx.close()
        db.dispose()
    sent = statuses.count("sent")
    print(f"publish web channel, SQLite       {sent / took:12,.1f} publications/s ({sent:,} sent)")


def main() -> int:
    """Run the phases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--publications", type=int, default=300)
    args = parser.parse_args()
    bench_length(args.texts)
    bench_publish(args.publications)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
