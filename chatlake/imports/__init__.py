"""`chatlake import`: chat history exports (Telegram Desktop JSON, WhatsApp "Export chat") into the `messages`
table. Pure parsers in `telegram_export` and `whatsapp_export`; the lake side in `load`."""
