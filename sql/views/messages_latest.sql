-- messages_latest: the newest version of each message, one row per (source, message_id): its last edit or
-- revoke when it has one, else the original. Count messages or read their current text here; the messages
-- table keeps every version.
CREATE OR REPLACE VIEW {{database}}.messages_latest AS
SELECT {{column_names:messages}}, dt
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY source, message_id
            ORDER BY edited_at DESC NULLS LAST, dt DESC, raw_key DESC
        ) AS version_rank
    FROM {{database}}.messages
) AS versions
WHERE version_rank = 1
