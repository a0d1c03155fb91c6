"""chatlake: WhatsApp and Telegram webhooks into a raw data lake, and the daily ETL to Parquet.

This file only declares what AWS gets (routes, the schedule, the SNS subscription of AWS End User Messaging Social
when the stage names its topic) and wires them to `chalicelib`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from chalice import Chalice, Cron, Rate, Response
from chalice.app import SNSEvent

from chalicelib import eum, metrics, runtime, webhook
from chalicelib.settings import ConfigError, Settings
from chalicelib.webhook import HttpError

app = Chalice(app_name="chatlake")
logging.getLogger("chatlake").setLevel(logging.INFO)
log = logging.getLogger("chatlake.app")
# The API only answers JSON and text, and bodies are stored as the bytes received: API Gateway need only
# base64 what is declared binary. A short list also spares each request chalice's matching of 16 types.
app.api.binary_types = ["application/octet-stream"]

# Accept any Content-Type: the body is judged by what it is, and an odd header must not cost a delivery.
ANY_CONTENT = ["*/*"]


def _respond(handler: Callable[[], Response]) -> Response:
    """The one place where refusals become HTTP responses."""
    try:
        return handler()
    except HttpError as e:
        return Response({"ok": False, "error": e.message}, status_code=e.status)
    except ConfigError as e:  # e.g. a malformed DATALAKE_URL: said in the log, not to whoever posts; platforms retry
        log.error("not configured: %s", e)
        return Response({"ok": False, "error": "the service is misconfigured; nothing was stored, retry later"},
                        status_code=503)


def _receive(source: str) -> Response:
    request = app.current_request
    settings = runtime.settings()
    key = webhook.receive(source, request.raw_body, request.headers, settings, runtime.storage(settings.datalake_url))
    return Response({"ok": True, "key": key})


@app.route("/health", methods=["GET"])
def health() -> dict:
    return {"ok": True}


@app.route("/telegram", methods=["POST"], content_types=ANY_CONTENT)
def telegram() -> Response:
    return _respond(lambda: _receive("telegram"))


@app.route("/whatsapp", methods=["POST"], content_types=ANY_CONTENT)
def whatsapp() -> Response:
    return _respond(lambda: _receive("whatsapp"))


@app.route("/whatsapp", methods=["GET"])
def whatsapp_verify() -> Response:
    def handshake() -> Response:
        params = app.current_request.query_params or {}
        challenge = webhook.whatsapp_challenge(params, runtime.settings())
        return Response(challenge, headers={"Content-Type": "text/plain"})

    return _respond(handshake)


@app.schedule(Cron(runtime.DAILY_ETL_AT[1], runtime.DAILY_ETL_AT[0], "*", "*", "?", "*"), name="daily_etl")
def daily_etl(event: object) -> dict:
    """Yesterday's raw deliveries → Parquet, and any day of the retry window still behind (EventBridge, shortly
    after midnight UTC)."""
    return {"days": [r.as_dict() for r in metrics.reported("daily_etl", runtime.run_daily_etl)]}


@app.lambda_function(name="etl_share")
def etl_share(event: dict, context: object) -> dict:
    """One worker of a fanned-out day (FANOUT_DELIVERIES): `daily_etl` invokes it asynchronously once per share
    (InvocationType=Event); it parses its share of the raw keys, and the last share to land merges the day."""
    return runtime.run_etl_share(event)


@app.schedule(Rate(runtime.settings().etl_interval_minutes, unit=Rate.MINUTES), name="intraday_etl")
def intraday_etl(event: object) -> dict:
    """Today's new raw deliveries → new files beside today's rows, every ETL_INTERVAL_MINUTES (default 15); the
    daily run finalises the day after midnight."""
    return {"runs": [r.as_dict() for r in metrics.reported("intraday_etl", runtime.run_intraday_etl)]}


# The stage's own setting only (chalice loads this file with the stage's environment_variables when it packages or
# deploys): never a developer's `.env`, which would add a function the stage does not ask for.
WHATSAPP_EUM_TOPIC = Settings(os.environ).whatsapp_eum_topic

if WHATSAPP_EUM_TOPIC:

    @app.on_sns_message(topic=WHATSAPP_EUM_TOPIC, name="whatsapp_eum")
    def whatsapp_eum(event: SNSEvent) -> dict:
        """AWS End User Messaging Social's WhatsApp events → the raw layer, exactly. A storage failure raises:
        Lambda retries the invocation, then SNS's and the function's dead-letter queues keep it (README)."""
        key, stored = eum.store(event.message, runtime.storage())
        if not stored:
            log.info("whatsapp_eum event already stored at %s (an SNS retry)", key)
        return {"key": key, "stored": stored}


@app.schedule(Rate(runtime.MEDIA_EVERY_MINUTES, unit=Rate.MINUTES), name="media_capture")
def media_capture(event: object) -> dict:
    """Photos, voice notes, documents, videos: their bytes into `media/` within minutes of receipt, retried until
    the platforms forget them (a schedule of its own: never on the webhook's answer path)."""
    return {"days": [r.as_dict() for r in runtime.run_media_capture()]}
