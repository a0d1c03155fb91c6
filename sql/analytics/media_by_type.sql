-- Media per type: how many photos, voice notes, documents, videos ... the messages carried, how many of them are
-- stored in the lake (and how many megabytes), still pending, or lost (failed, too large, expired, disabled).
SELECT
    source,
    message_type,
    count(*) AS files,
    count_if(status = 'stored') AS stored,
    count_if(status = 'pending') AS pending,
    count_if(status NOT IN ('stored', 'pending')) AS not_stored,
    round(CAST(coalesce(sum(CASE WHEN status = 'stored' THEN bytes END), 0) AS double) / 1048576, 2) AS stored_mb
FROM media
GROUP BY source, message_type
ORDER BY files DESC, source, message_type
