"""Batch work on Ray: many clips rendered (`syncanim batch`), many avatars made (`syncanim batch-train`), on this
machine or a cluster; the driver (drive.py) ships what workers need (shipping.py) and keeps the record (summary.py)."""
