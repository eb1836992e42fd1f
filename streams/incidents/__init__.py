"""Incidents: alerts about the same leak, wherever and whenever it is seen, become one incident.

``similarity`` and ``correlate`` are pure (no Kafka, no Elasticsearch); ``agent`` is the thin
Faust part that keeps their state in tables and writes incidents to Elasticsearch.
"""
