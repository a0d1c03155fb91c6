-- First-response time on WhatsApp, per day: for each inbound message (reactions and system notices excluded),
-- the wait until the business next wrote to that contact - a message it sent, known from its `sent` status,
-- or one sent from the WhatsApp Business app (an outbound echo). A message never followed by one is unanswered.
WITH events AS (
    SELECT chat_id AS contact, sent_at AS event_at, 0 AS is_reply, dt
    FROM messages
    WHERE source = 'whatsapp' AND direction = 'in' AND NOT is_edit
        AND message_type NOT IN ('reaction', 'system')
    UNION ALL
    SELECT recipient_id AS contact, status_at AS event_at, 1 AS is_reply, dt
    FROM statuses
    WHERE status = 'sent'
    UNION ALL
    SELECT chat_id AS contact, sent_at AS event_at, 1 AS is_reply, dt
    FROM messages
    WHERE source = 'whatsapp' AND direction = 'out' AND NOT is_edit
),
waits AS (
    SELECT
        dt,
        event_at AS received_at,
        is_reply,
        -- The running minimum runs newest to oldest, so each row sees every later event: one pass per contact.
        min(CASE WHEN is_reply = 1 THEN event_at END) OVER (
            PARTITION BY contact
            ORDER BY event_at DESC, is_reply DESC
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS replied_at
    FROM events
),
answered AS (
    SELECT dt, to_unixtime(replied_at) - to_unixtime(received_at) AS wait_seconds
    FROM waits
    WHERE is_reply = 0
)
SELECT
    dt AS day,
    count(*) AS inbound,
    count(wait_seconds) AS answered,
    round(avg(wait_seconds), 1) AS avg_wait_seconds,
    coalesce(count_if(wait_seconds <= 300), 0) AS within_5_min,
    coalesce(count_if(wait_seconds <= 3600), 0) AS within_1_hour,
    max(wait_seconds) AS longest_wait_seconds
FROM answered
GROUP BY dt
ORDER BY day
