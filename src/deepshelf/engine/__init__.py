"""The serving engine: what is recommended and recorded, without any web framework.

Loaded runs and their swaps (`loaded.py`, `holder.py`), ranking and rules, live trending, the visit (session) stage,
explanations, experiments, impressions and attribution, settings, and the `Service` facade that the HTTP layer
(`deepshelf.api`), a batch job or a replay evaluation call alike.
"""
