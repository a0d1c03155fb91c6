-- Active chats and senders per day and source: how many conversations saw any message that day (edits
-- included), and how many distinct people wrote in (outbound messages are the business, not a sender).
SELECT
    dt AS day,
    source,
    count(DISTINCT chat_id) AS active_chats,
    count(DISTINCT CASE WHEN direction = 'in' THEN sender_id END) AS active_senders
FROM messages
GROUP BY dt, source
ORDER BY day, source
