"""The result model: reports, statuses, diagnosis codes, safe text. Plain data: no IO, no torch."""
