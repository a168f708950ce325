"""LTI 1.3 (LTI Advantage): the LMS launches the grader and receives its grades.

models.py (the tables), store.py (every operation on them), keys.py (the tool's RSA keys and its JWKS),
launch.py (login initiation and the launch's validation), platform.py (talking to a platform: its JWKS,
access tokens, scores, the roster), routes.py (the endpoints and the pages), passback.py (the score outbox).
"""
