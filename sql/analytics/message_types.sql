-- Message-type mix per source: what people and the business send (text, photos, voice notes, reactions,
-- ...), as counts and as a percentage of the source's messages. Originals only: an edit is not a new message.
SELECT
    source,
    message_type,
    count(*) AS messages,
    round(100 * CAST(count(*) AS double) / sum(count(*)) OVER (PARTITION BY source), 2) AS share_pct
FROM messages
WHERE NOT is_edit
GROUP BY source, message_type
ORDER BY source, messages DESC, message_type
