-- Messages per day and source: how much traffic each platform brings, inbound and outbound.
-- A message counts once, on the day it was received (dt, UTC); its edits and revokes are counted apart.
SELECT
    dt AS day,
    source,
    count_if(NOT is_edit) AS messages,
    count_if(NOT is_edit AND direction = 'in') AS inbound,
    count_if(NOT is_edit AND direction = 'out') AS outbound,
    count_if(is_edit) AS edits
FROM messages
GROUP BY dt, source
ORDER BY day, source
