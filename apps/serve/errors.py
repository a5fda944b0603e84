"""What the server answers when a request cannot be served: one JSON object `{"error": MESSAGE}` with
the status that says why (TF Serving's error shape), never a traceback."""
from __future__ import annotations

# The statuses the API uses, and what each means here:
#   400 the request is malformed (not JSON, no "instances", bad base64, an instance of the wrong shape)
#   404 no such model, route or version
#   405 the route exists but not with this method
#   413 over a size cap (the body, one field, the number of instances, a text's length)
#   415 a Content-Type the endpoint does not take
#   422 well-formed but unusable input (a corrupt image or recording, an empty text)
#   503 the server is draining, or the model's queue is full
STATUS_TEXT = {400: "bad request", 404: "not found", 405: "method not allowed", 413: "too large",
               415: "unsupported media type", 422: "unprocessable input", 500: "internal error",
               503: "unavailable"}


class ApiError(Exception):
    """A request that cannot be served: `status` and a one-line `message` for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = one_line(message)


def one_line(message: str, limit: int = 500) -> str:
    """`message` on one line, at most `limit` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
