"""Coordination: accounts that act together (co-repost, co-link, co-hashtag, co-text,
co-reply) within a short time window, their networks and groups.

- keys.py: what each post says it shares (the keys of each co-action kind), pure.
- engine.py: pairs posts that share a key within the window (numpy, sorted by key and
  time), the co-actions, edges and their thresholds, pure.
- groups.py: groups of accounts by community detection (Leiden on igraph).
- models.py, service.py: the stored state, full and incremental updates, groups.
- jobs.py, commands.py: the pipeline task after ingest and `elshi coordination`.
"""
