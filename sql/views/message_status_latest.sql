-- message_status_latest: each message's furthest delivery status, one row per message_id.
-- Progress: sent < delivered < read = played; failed wins over everything; a status chatlake does not know
-- (deleted, or one WhatsApp adds later) ranks below sent. Among equals the latest status_at wins.
CREATE OR REPLACE VIEW {{database}}.message_status_latest AS
SELECT {{column_names:statuses}}, dt
FROM (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY message_id
            ORDER BY
                CASE status
                    WHEN 'failed' THEN 4
                    WHEN 'read' THEN 3
                    WHEN 'played' THEN 3
                    WHEN 'delivered' THEN 2
                    WHEN 'sent' THEN 1
                    ELSE 0
                END DESC,
                status_at DESC,
                status DESC
        ) AS progress_rank
    FROM {{database}}.statuses
) AS progress
WHERE progress_rank = 1
