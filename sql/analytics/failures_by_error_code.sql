-- Failures by error code: why WhatsApp could not deliver the business's messages, most frequent first, with
-- how many recipients were affected and when it first and last happened. See Meta's error code reference.
SELECT
    error_code,
    max(error_title) AS error_title,
    count(*) AS failures,
    count(DISTINCT recipient_id) AS recipients,
    min(status_at) AS first_failure_at,
    max(status_at) AS last_failure_at
FROM statuses
WHERE status = 'failed'
GROUP BY error_code
ORDER BY failures DESC, error_code
