"""Parses a /metrics scrape (stdin) with the Prometheus client library's own parsers and prints
what it found as JSON: {"families": {name: type}, "samples": [[name, labels, value], ...]}.

Usage: parse_metrics.py prometheus|openmetrics < scrape.txt
A scrape the parser refuses exits non-zero with the parser's error.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as prometheus


def main() -> None:
    parse = {"prometheus": prometheus, "openmetrics": openmetrics}[sys.argv[1]]
    families = {}
    samples = []
    for family in parse(sys.stdin.read()):
        families[family.name] = family.type
        for sample in family.samples:
            samples.append([sample.name, sample.labels, sample.value])
    json.dump({"families": families, "samples": samples}, sys.stdout)


if __name__ == "__main__":
    main()
