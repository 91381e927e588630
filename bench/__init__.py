"""Benchmarks: each module measures one thing against a baseline in the same run and
writes its section of docs/benchmarks.md (and its plots under docs/img/)."""
