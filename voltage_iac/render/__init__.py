"""Renderers: a Plan (or drift report) -> text for people, JSON for machines, Markdown for PRs.

Each renderer is a pure function of `Plan.to_dict()`-level data and returns a string;
only the CLI prints.
"""
