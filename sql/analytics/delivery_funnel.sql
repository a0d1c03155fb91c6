-- Delivery funnel of the messages the business sent on WhatsApp, by the day of each message's first status:
-- how many were sent, delivered and read (a stage counts every message that reached it or went further, by its
-- furthest status), how many failed, and the conversion between stages in percent.
WITH first_status AS (
    SELECT message_id, min(dt) AS day
    FROM statuses
    GROUP BY message_id
),
furthest AS (
    SELECT f.day, l.status
    FROM first_status AS f
    JOIN message_status_latest AS l ON l.message_id = f.message_id
),
stages AS (
    SELECT
        day,
        count(*) AS messages,
        coalesce(count_if(status IN ('sent', 'delivered', 'read', 'played')), 0) AS sent,
        coalesce(count_if(status IN ('delivered', 'read', 'played')), 0) AS delivered,
        coalesce(count_if(status IN ('read', 'played')), 0) AS read,
        coalesce(count_if(status = 'failed'), 0) AS failed
    FROM furthest
    GROUP BY day
)
SELECT
    day,
    messages,
    sent,
    delivered,
    read,
    failed,
    round(100 * CAST(delivered AS double) / nullif(sent, 0), 1) AS delivered_pct,
    round(100 * CAST(read AS double) / nullif(delivered, 0), 1) AS read_pct
FROM stages
ORDER BY day
