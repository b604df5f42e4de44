"""Web server: staging area, monitoring pages, JSON API, /metrics."""
