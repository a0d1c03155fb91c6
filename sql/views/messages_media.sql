-- messages_media: every message that carries media, with its file in the lake: media_key (the object under the
-- lake's root, null until stored), its status, MIME type, size and sha256. One join away from any messages
-- query: JOIN messages_media USING (source, message_id).
CREATE OR REPLACE VIEW {{database}}.messages_media AS
SELECT
    messages.source,
    messages.message_id,
    messages.message_type,
    messages.media_id,
    media.media_key,
    media.status AS media_status,
    media.mime_type,
    media.bytes,
    media.sha256,
    media.fetched_at,
    media.error AS media_error,
    messages.dt
FROM {{database}}.messages
LEFT JOIN {{database}}.media ON media.source = messages.source AND media.media_id = messages.media_id
WHERE messages.media_id IS NOT NULL
