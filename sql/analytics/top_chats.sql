-- Top chats: the 20 conversations with the most messages (originals, both directions), with how many people
-- wrote in and when the chat was first and last active.
SELECT
    source,
    chat_id,
    max(chat_type) AS chat_type,
    max(chat_title) AS chat_title,
    count(*) AS messages,
    count(DISTINCT CASE WHEN direction = 'in' THEN sender_id END) AS senders,
    min(sent_at) AS first_message_at,
    max(sent_at) AS last_message_at
FROM messages
WHERE NOT is_edit
GROUP BY source, chat_id
ORDER BY messages DESC, source, chat_id
LIMIT 20
