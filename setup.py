"""The build's one compiled part (pyproject.toml holds everything else): the reader of a
shard's price chunks, in C because every point of every cold answer passes through it
(federation/router/rows.py says why)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "federation.router._chunkreader",
            ["federation/router/_chunkreader.c"],
            extra_compile_args=["-Wall", "-Wextra"],
        )
    ]
)
