-- Busiest hours (UTC) per weekday: the three hours of each weekday with the most inbound messages, to plan
-- who answers when. weekday is ISO: 1 = Monday ... 7 = Sunday; hour_utc 0-23 of sent_at.
WITH per_hour AS (
    SELECT
        day_of_week(sent_at) AS weekday,
        date_format(sent_at, '%W') AS weekday_name,
        hour(sent_at) AS hour_utc,
        count(*) AS messages
    FROM messages
    WHERE direction = 'in' AND NOT is_edit
    GROUP BY day_of_week(sent_at), date_format(sent_at, '%W'), hour(sent_at)
),
ranked AS (
    SELECT
        weekday,
        weekday_name,
        hour_utc,
        messages,
        row_number() OVER (PARTITION BY weekday ORDER BY messages DESC, hour_utc) AS rank_in_weekday
    FROM per_hour
)
SELECT weekday, weekday_name, rank_in_weekday, hour_utc, messages
FROM ranked
WHERE rank_in_weekday <= 3
ORDER BY weekday, rank_in_weekday
