"""The HTTP API's routes, one `APIRouter` a resource; app.py includes them in this order (the OpenAPI
document lists the paths in it).

- submissions.py: POST /api/v1/submissions, GET /api/v1/submissions/{id}, GET /api/v1/submissions.
- reports.py: a submission's report, the gradebook CSV, regrading.
- health.py: /api/v1/queue, /healthz, /metrics.

The pages (../pages.py) and LTI 1.3 (../lti/routes.py) add their own routes beside these.
"""
