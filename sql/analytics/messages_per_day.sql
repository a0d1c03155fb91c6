-- Messages per day and source: how much traffic each platform brings, inbound and outbound.
-- A message counts once, on the day it was received (dt, UTC); its edits and revokes are counted apart.
SELECT
    dt AS day,
    source,
    coalesce(count_if(NOT is_edit), 0) AS messages,
    coalesce(count_if(NOT is_edit AND direction = 'in'), 0) AS inbound,
    coalesce(count_if(NOT is_edit AND direction = 'out'), 0) AS outbound,
    coalesce(count_if(is_edit), 0) AS edits
FROM messages
GROUP BY dt, source
ORDER BY day, source
