"""Planning: which models to use, what they cost to own, and what hardware they need.

``catalog`` holds sourced facts about models; ``tco``, ``hardware`` and
``recommend`` are pure functions over those facts and the user's numbers;
``plot`` and ``usage_source`` are the only modules here that touch files.
"""
