"""The HTTP interface (SageMaker's inference contract), built by a factory.

  GET  /ping                   200, empty body: the model is loaded (the app exists only then)
  GET  /execution-parameters   batch transform limits, JSON
  POST /invocations            score one series; formats in payloads.py, optional outputs in outputs.py

Errors are short one-line text bodies: 400 bad data (the line/row and column named,
the offending cell quoted short), 406 unsupported Accept, 408 a body that stopped
arriving, 413 body above the limit (with or without Content-Length), 415 unsupported
Content-Type, 500 our own bug (the traceback goes to the log only). Nothing is kept
between requests, so repeated calls give identical answers.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Protocol

import numpy as np
from flask import Flask, Response, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, RequestTimeout
from werkzeug.http import parse_options_header

from ..errors import DataError, UserError, excerpt
from ..predictor import ScoreResult
from .custom_attributes import CUSTOM_ATTRIBUTES, OUTPUT, custom_attribute, first_row
from .outputs import ALARM, ATTRIBUTION, OPTIONS, parse_outputs
from .payloads import CSV, DECODERS, ENCODERS, JSON
from .process import torch_threads_per_calling_thread
from .settings import ServeSettings

logger = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"


READ_PIECE = 1 << 20  # bytes read from the request stream at a time


class Scorer(Protocol):
    """What the app needs of a predictor (lstm_ad.predictor.Predictor in production)."""

    @property
    def columns(self) -> int: ...

    def score(self, values: np.ndarray, alarm: bool = False, attribution: bool = False, first_row: int = 0
              ) -> ScoreResult: ...

    def rows_needed(self) -> tuple[int, int]: ...

    def split_margins(self) -> tuple[int, int]: ...

    @property
    def chunk_length(self) -> int: ...


def create_app(predictor: Scorer, settings: ServeSettings) -> Flask:
    """The whole HTTP side of `serve`: routes, limits, error answers and per-thread torch settings."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes
    app.before_request(torch_threads_per_calling_thread(settings.torch_threads))
    _add_routes(app, predictor, settings)
    _add_error_answers(app, settings, sum(predictor.split_margins()), predictor.chunk_length)
    return app


def _add_routes(app: Flask, predictor: Scorer, settings: ServeSettings) -> None:
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
            return _error(415, f"Unsupported Content-Type {excerpt(request.content_type or '')}: send text/csv (no "
                          "header, one column per variable) or application/json.")
        accept, accept_outputs = _accept()
        if accept is None:
            return _error(406, f"Unsupported Accept {excerpt(request.headers.get('Accept', ''))}: ask for text/csv or "
                          "application/json.")
        started = time.perf_counter()
        body = _read_body(settings.max_payload_bytes, settings.body_read_timeout_s)
        values, body_outputs = DECODERS[content_type](body, predictor.columns)
        outputs = _outputs(body_outputs, accept_outputs, settings.outputs or frozenset())
        result = predictor.score(values, alarm=ALARM in outputs, attribution=ATTRIBUTION in outputs,
                                 first_row=first_row(request.headers.get(CUSTOM_ATTRIBUTES, "")))
        answer = ENCODERS[accept](result)
        logger.info("Scored %d rows x %d columns in %.3f s (%d bytes in, %d out).", values.shape[0],
                    values.shape[1], time.perf_counter() - started, len(body), len(answer))
        return Response(answer, status=200, content_type=accept)


def _add_error_answers(app: Flask, settings: ServeSettings, overlap: int, chunk_length: int) -> None:
    @app.errorhandler(UserError)
    def bad_request(exc: UserError) -> Response:
        message = " ".join(str(exc).split())  # one line, whatever the exception held
        logger.info("Rejected request (400): %s", message)
        return _error(400, message)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        return _error(413, f"The request body is larger than the limit of {settings.max_payload_mb} MB "
                      f"(SAGEMAKER_MAX_PAYLOAD_IN_MB). Split the series into files that start on multiples of "
                      f"{chunk_length} rows and overlap by {overlap} rows, what this model reads around a row "
                      "(`lstm-ad-local split` and `join` do it; the batch transform documentation shows how).")

    @app.errorhandler(RequestTimeout)
    def body_timeout(exc: RequestTimeout) -> Response:
        return _error(408, f"The request body stopped arriving for {settings.body_read_timeout_s:g} s; the "
                      "request was abandoned. Send the whole body without pauses.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 500, f"{exc.name}: {exc.description}")

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        logger.exception("Internal error while handling %s %s", request.method, request.path)
        return _error(500, f"Internal error ({type(exc).__name__}); this is a bug in LSTM-AD, the server log has "
                      "the details.")


def _read_body(limit: int | None, timeout_s: float) -> bytes:
    """The whole request body, de-chunked; 413 as soon as it passes `limit`, chunked or not.

    Read from the WSGI stream directly: werkzeug applies the limit to bodies sent without
    Content-Length only when the server marks the stream terminated, and would otherwise cut
    them silently. A socket timeout frees the thread from a client that stops sending.
    """
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(timeout_s)
    stream = request.environ["wsgi.input"]
    pieces, size = [], 0
    try:
        while True:
            piece = stream.read(READ_PIECE)
            if not piece:
                break
            size += len(piece)
            if limit is not None and size > limit:
                raise RequestEntityTooLarge()
            pieces.append(piece)
    except TimeoutError:
        raise RequestTimeout() from None
    except (OSError, ValueError, ParseException) as exc:  # e.g. a malformed chunk size
        raise DataError(f"The request body could not be read ({type(exc).__name__}): check its "
                        "Transfer-Encoding / Content-Length.") from None
    finally:
        if sock is not None:
            sock.settimeout(None)
    return b"".join(pieces)


def _content_type() -> str:
    """The media type without parameters; a missing Content-Type is taken as CSV."""
    return (request.mimetype or CSV).lower()


def _accept() -> tuple[str | None, str | None]:
    """(the response media type, its `output` parameter if any): CSV for a missing Accept or */*;
    (None, None) when nothing matches."""
    header = request.headers.get("Accept", "").strip()
    if not header:
        return CSV, None
    choices = {CSV: CSV, JSON: JSON, "*/*": CSV, "*": CSV, "text/*": CSV, "application/*": JSON}
    entries = [(*parse_options_header(value), quality) for value, quality in request.accept_mimetypes]  # best first
    if any(media.lower() in OPTIONS for media, _, _ in entries):  # `output=alarm,attribution` unquoted: split
        raise UserError(f"Accept {excerpt(header)}: quote the list of outputs (output=\"alarm,attribution\") or "
                        "separate the names with + (output=alarm+attribution).")
    for media, parameters, quality in entries:
        if quality > 0 and media.lower() in choices:
            return choices[media.lower()], parameters.get("output")
    return None, None


def _outputs(from_body: frozenset[str] | None, from_accept: str | None, default: frozenset[str]) -> frozenset[str]:
    """The optional outputs of this request: the JSON body's, else Accept's, else CustomAttributes', else
    the server's (LSTM_AD_OUTPUT, else the model's default-output)."""
    if from_body is not None:
        return from_body
    if from_accept is not None:
        return parse_outputs(from_accept, "Accept header, output parameter")
    attributes = custom_attribute(request.headers.get(CUSTOM_ATTRIBUTES, ""), OUTPUT)
    if attributes is not None:
        return parse_outputs(attributes, f"{CUSTOM_ATTRIBUTES}, {OUTPUT}")
    return default


def _error(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, content_type=TEXT)
