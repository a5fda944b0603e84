"""`sensorium serve`: the models over HTTP, in TF Serving's REST shape, with a demo page.

- `cli`: the command's options and `run` (aiohttp is imported only when the command runs);
- `models`: `--model` specs, loading, TF Serving's status and metadata answers;
- `inputs`: request values -> the predictors' items, and the size caps (`Limits`);
- `batching`: per-model queues, worker threads and adaptive batching;
- `http`: JSON errors, CORS, headers, the access log; `errors`: `ApiError` and the statuses;
- `app`: the routes; `server`: bind, serve, drain on SIGTERM;
- `static/`: the demo page (plain HTML, CSS and JS; no CDN, no build step).

Needs the serve extra (`pip install "sensorium[serve]"`, aiohttp).
"""
