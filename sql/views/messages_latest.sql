-- messages_latest: the newest version of each message, one row per (source, message_id): its last edit or
-- revoke when it has one, else the original. An edit and a revoke made in the same second (WhatsApp times are
-- whole seconds) are both kept in messages; here the revoke wins, since a deleted message cannot be edited.
-- Count messages or read their current text here; the messages table keeps every version.
CREATE OR REPLACE VIEW {{database}}.messages_latest AS
SELECT {{column_names:messages}}, dt
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY source, message_id
            ORDER BY edited_at DESC NULLS LAST, CASE WHEN message_type = 'revoke' THEN 1 ELSE 0 END DESC,
                     dt DESC, raw_key DESC
        ) AS version_rank
    FROM {{database}}.messages
) AS versions
WHERE version_rank = 1
