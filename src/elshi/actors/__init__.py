"""Actors: who speaks. Account types set by rules (imported lists, platform labels, name
heuristics) as well as by hand, inauthenticity signals per account with their evidence, and
accounts of several platforms linked by hand into one actor.

- lists.py: reading a list of accounts (CSV or JSON) with an error per bad line, pure.
- rules.py: platform labels from raw payloads and name heuristics, pure.
- signals.py: activity, anonymity, amplification, coordination and age signals, pure.
- models.py, service.py: the stored lists, assessments and actors; the assessment run.
- jobs.py, commands.py, views.py: the periodic task, `elshi actors` and the pages.
"""
