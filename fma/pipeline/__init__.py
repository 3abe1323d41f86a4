"""The pipeline runner of ``tools/reproduce.py``: pipeline configs and their checks, the preflight,
step fingerprints, the step processes and the leaderboard."""
