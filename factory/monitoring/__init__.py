"""Watching models at work: reference profiles, drift, quality and fairness of served traffic,
alerts, and the retrain-and-promote gate.

Reads what the stages before it wrote to disk (run directories, registry versions, the serving
request log); writes ``monitor.json``, Prometheus textfiles and reports. The server learns the
latest drift figures from a file in its serving directory, never by importing this package.
"""
