"""Media of WhatsApp messages that came through AWS End User Messaging Social (`raw/source=whatsapp_eum/`).

Such a WhatsApp Business Account has no Graph API token to give: the service's `GetWhatsAppMessageMedia` downloads
the file from Meta and copies it to S3 itself. A fetch is therefore three steps: `metadataOnly` first (the size
against MEDIA_MAX_BYTES, the MIME type) so that nothing too large is ever copied; the copy to a staging prefix of
the lake's own bucket (`media/_staging/<random>/`: the service appends the media id to the key it is given), read
back in chunks into the spool while counted and hashed (`media.spool_stream`, as every fetch); and the staged
object deleted, whatever happened. The caller stores the spooled file at its content-addressed `media/` key like
any other fetch (`media_capture.store_file`), so the same bytes by either door are one object.

`originationPhoneNumberId` is the service's id of the business number (`phone-number-id-<hex>`), not Meta's: it
comes from the stored event's `context.MetaPhoneNumberIds`, matched against the message's `account_id` (Meta's
`phone_number_id`).

Only with the lake on S3 (the service writes to a bucket). The boto3 `socialmessaging` client is injected:
`runtime` builds it once. No Graph API token is used or needed.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from typing import Any

from chalicelib import eum, layout
from chalicelib.media import Fetched, Limits, MediaError, clean_message, clean_mime, spool_stream
from chalicelib.storage import NotFound, S3Storage, StorageError
from chalicelib.values import decode

log = logging.getLogger("chatlake.media")

WHAT = "End User Messaging Social GetWhatsAppMessageMedia"
#: Error codes of the service (and of AWS generally) after which a later run tries again.
RETRY_CODES = {
    "ThrottledRequestException", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
    "InternalServiceException", "InternalServerError", "ServiceUnavailable", "ServiceUnavailableException",
    "DependencyException",  # Meta's side did not answer
    "AccessDeniedByMetaException",  # the WABA's access at Meta: fixable within the window
    "AccessDeniedException",  # the function's role: fixed by deploying its policy
}
#: Permanent: the media id (or the phone number) is unknown, or the request cannot succeed as it is.
FAILED_CODES = {"ResourceNotFoundException", "ValidationException", "InvalidParametersException"}
STAGING_MAX_AGE = 3600.0  # seconds: a staged copy older than this belongs to a killed run


def origination_id(storage: S3Storage, raw_key: str, media_id: str) -> str:
    """The service's id of the business number that received (or sent) `media_id`, from the stored event."""
    try:
        body = storage.get(raw_key)
    except NotFound:
        raise MediaError("failed", f"the event {raw_key} is no longer in the lake: its phone number is unknown") \
            from None
    except StorageError as e:
        raise MediaError("retry", f"cannot read the event {raw_key}: {e}") from None
    try:
        event = decode(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        event = None
    if not isinstance(event, dict):
        raise MediaError("failed", f"the event {raw_key} is not a JSON object: its phone number is unknown")
    accounts = {m.account_id for m in eum.parse(event, raw_key).messages if m.media_id == media_id}
    for number in eum.phone_numbers(event):
        if number.meta_id in accounts:
            return number.origination_id
    shown = ", ".join(sorted(a for a in accounts if a)) or "none"
    raise MediaError("failed", f"the event {raw_key} names no End User Messaging Social phone number for the "
                     f"message's phone_number_id ({clean_message(shown, 80)}) in context.MetaPhoneNumberIds")


def _client_error(e: Exception) -> MediaError:
    """The next step for an error of the service (a botocore ClientError or BotoCoreError)."""
    response = getattr(e, "response", None)
    if not isinstance(response, dict):  # BotoCoreError: no answer at all (connection, timeout)
        return MediaError("retry", f"{WHAT}: {clean_message(e)}")
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    text = f"{WHAT}: {code or 'error'}: {clean_message(error.get('Message'))}".rstrip(": ")
    if code == "AccessDeniedException":
        text += " (the media function's role needs social-messaging:GetWhatsAppMessageMedia: chatlake deploy)"
    if code in RETRY_CODES or (code not in FAILED_CODES and (status == 429 or status >= 500)):
        return MediaError("retry", text)
    return MediaError("failed", text)


@dataclass
class EumMedia:
    """`GetWhatsAppMessageMedia` into the lake's bucket, read back from a staging prefix (module docstring)."""

    client: Any  # boto3 client("socialmessaging")
    storage: S3Storage
    limits: Limits = field(default_factory=Limits)
    spool: str | None = None  # the spool folder (media.Http's); None: the system's temporary folder
    source: str = "whatsapp"

    def _call(self, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_whatsapp_message_media(**params)
        except (BotoCoreError, ClientError) as e:
            raise _client_error(e) from None

    def fetch(self, media_id: str, raw_key: str) -> Fetched:
        phone = origination_id(self.storage, raw_key, media_id)
        info = self._call(mediaId=media_id, originationPhoneNumberId=phone, metadataOnly=True)
        kb = info.get("fileSize")
        if isinstance(kb, int) and kb * 1000 > self.limits.max_bytes:  # KB: at least this many bytes
            raise MediaError("too_large", f"{WHAT}: {kb:,} KB is over MEDIA_MAX_BYTES ({self.limits.max_bytes:,} "
                             "bytes); not copied")
        staging = f"{self.storage.prefix}{layout.MEDIA_STAGING_PREFIX}{secrets.token_hex(8)}/"
        try:
            self._call(mediaId=media_id, originationPhoneNumberId=phone,
                       destinationS3File={"bucketName": self.storage.bucket, "key": staging})
            fetched = self._read_staged(staging)
        finally:
            self._delete_staged(staging)
        fetched.mime_type = clean_mime(info.get("mimeType")) or fetched.mime_type
        return fetched

    def _read_staged(self, staging: str) -> Fetched:
        """The staged copy (the one object under `staging`) streamed into the spool, counted and hashed."""
        from botocore.exceptions import BotoCoreError, ClientError

        s3, bucket = self.storage.client, self.storage.bucket
        try:
            found = s3.list_objects_v2(Bucket=bucket, Prefix=staging).get("Contents", [])
            if not found:
                raise MediaError("retry", f"{WHAT} answered, but no file arrived under s3://{bucket}/{staging}")
            if found[0]["Size"] > self.limits.max_bytes:
                raise MediaError("too_large", f"{WHAT}: {found[0]['Size']:,} bytes is over MEDIA_MAX_BYTES "
                                 f"({self.limits.max_bytes:,})")
            reply = s3.get_object(Bucket=bucket, Key=found[0]["Key"])
        except (BotoCoreError, ClientError) as e:
            raise MediaError("retry", f"cannot read the staged copy under s3://{bucket}/{staging}: {e}") from None
        body = reply["Body"]

        def read(n: int) -> bytes:
            try:
                return body.read(n)
            except BotoCoreError as e:  # a read timeout or a broken stream: botocore's, not an OSError
                raise OSError(str(e)) from e

        spool = self.spool or os.path.join(tempfile.gettempdir(), "chatlake-media")
        try:
            path, size, sha256 = spool_stream(read, self.limits, spool, "staged media copy",
                                              f"staged media copy: S3 stopped sending for {self.limits.timeout:g} s")
        finally:
            body.close()
        return Fetched(path, size, sha256, clean_mime(reply.get("ContentType")))

    def _delete_staged(self, staging: str) -> None:
        """Remove what is under `staging`; a failure is logged (`clean_staging` removes it on a later run)."""
        from botocore.exceptions import BotoCoreError, ClientError

        s3, bucket = self.storage.client, self.storage.bucket
        try:
            for obj in s3.list_objects_v2(Bucket=bucket, Prefix=staging).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        except (BotoCoreError, ClientError) as e:
            log.warning("could not delete the staged media copy under s3://%s/%s (%s); a later run removes it",
                        bucket, staging, e)

    def clean_staging(self, now: float, older_than: float = STAGING_MAX_AGE) -> None:
        """Remove staged copies that a killed run left behind."""
        try:
            for info in self.storage.list(layout.MEDIA_STAGING_PREFIX):
                if now - info.mtime > older_than:
                    self.storage.delete(info.key)
        except StorageError as e:
            log.warning("could not clean %s: %s", layout.MEDIA_STAGING_PREFIX, e)
