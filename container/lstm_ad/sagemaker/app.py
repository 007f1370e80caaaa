"""The HTTP interface (SageMaker's inference contract), built by a factory.

  GET  /ping                   200, empty body: the model is loaded (the app exists only then)
  GET  /execution-parameters   batch transform limits, JSON
  POST /invocations            score one series; formats in payloads.py

Errors are short one-line text bodies: 400 bad data (the line/row and column named),
406 unsupported Accept, 413 body above the limit, 415 unsupported Content-Type,
500 our own bug (the traceback goes to the log only). Nothing is kept between
requests, so repeated calls give identical answers.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Protocol

import numpy as np
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import UserError
from ..predictor import ScoreResult
from .payloads import CSV, DECODERS, ENCODERS, JSON
from .process import torch_threads_per_calling_thread
from .settings import ServeSettings

logger = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"


class Scorer(Protocol):
    """What the app needs of a predictor (lstm_ad.predictor.Predictor in production)."""

    def score(self, values: np.ndarray) -> ScoreResult: ...


def create_app(predictor: Scorer, settings: ServeSettings) -> Flask:
    """The whole HTTP side of `serve`: routes, limits, error answers and per-thread torch settings."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    app.before_request(torch_threads_per_calling_thread(settings.torch_threads))

    @app.get("/ping")
    def ping() -> Response:
        return Response(b"", status=200, content_type=TEXT)

    @app.get("/execution-parameters")
    def execution_parameters() -> Response:
        return Response(json.dumps(settings.execution_parameters()), status=200, content_type=JSON)

    @app.post("/invocations")
    def invocations() -> Response:
        content_type = _content_type()
        if content_type not in DECODERS:
            return _error(415, f"Unsupported Content-Type {request.content_type!r}: send text/csv (no header, "
                          "one column per variable) or application/json.")
        accept = _accept()
        if accept is None:
            return _error(406, f"Unsupported Accept {request.headers.get('Accept')!r}: ask for text/csv or "
                          "application/json.")
        started = time.perf_counter()
        body = request.get_data(cache=False)
        values = DECODERS[content_type](body)
        result = predictor.score(values)
        answer = ENCODERS[accept](result)
        logger.info("Scored %d rows x %d columns in %.3f s (%d bytes in, %d out).", values.shape[0],
                    values.shape[1], time.perf_counter() - started, len(body), len(answer))
        return Response(answer, status=200, content_type=accept)

    @app.errorhandler(UserError)
    def bad_request(exc: UserError) -> Response:
        message = " ".join(str(exc).split())  # one line, whatever the exception held
        logger.info("Rejected request (400): %s", message)
        return _error(400, message)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        return _error(413, f"The request body is larger than the limit of {settings.max_payload_mb} MB "
                      "(SAGEMAKER_MAX_PAYLOAD_IN_MB). Split the series into files that overlap by context-length rows.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 500, f"{exc.name}: {exc.description}")

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        logger.exception("Internal error while handling %s %s", request.method, request.path)
        return _error(500, f"Internal error ({type(exc).__name__}); this is a bug in LSTM-AD, the server log has "
                      "the details.")

    return app


def _content_type() -> str:
    """The media type without parameters; a missing Content-Type is taken as CSV."""
    return (request.mimetype or CSV).lower()


def _accept() -> str | None:
    """The response media type: CSV for a missing Accept or */*; None when nothing matches."""
    header = request.headers.get("Accept", "").strip()
    if not header:
        return CSV
    return request.accept_mimetypes.best_match([CSV, JSON])


def _error(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, content_type=TEXT)
