"""``xwatch``: the command line. Each command's module is imported only when it runs."""

from __future__ import annotations

import click

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="extraction-watch")
def main() -> None:
    """extraction-watch: catch LLM API extraction (distillation) campaigns in a Kafka stream.

    \b
    Quick start (no Kafka needed):
      xwatch demo          embedded broker + worker + simulated traffic with a campaign
    Run against your Kafka:
      xwatch worker --broker kafka:9092
      xwatch alerts --broker kafka:9092 --follow
    """


main.add_command(__import__("streams.evaluate", fromlist=["evaluate_command"]).evaluate_command)
