"""The monitoring kit shipped with autoglm: a Prometheus scrape config, recording and
alerting rules, and a Grafana dashboard (examples/observability/ links here).
`autoglm deploy --with-monitoring DIR` writes them beside a deployment
(`ops/deploy/monitoring.py`)."""
