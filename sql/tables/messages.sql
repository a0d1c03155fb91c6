-- messages: one row per version of a chat message (the original, and each edit or revoke), Telegram and
-- WhatsApp alike. (source, message_id, edited_at) is unique; messages_latest keeps the newest version.
-- Partition projection: Athena computes the dt partitions from the properties below, so no crawler,
-- MSCK REPAIR TABLE or ALTER TABLE ADD PARTITION is ever needed. Filter on dt to read fewer days.
CREATE EXTERNAL TABLE IF NOT EXISTS {{database}}.messages (
{{column_definitions:messages}}
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION '{{location}}/enriched/messages/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '{{projection_start}},NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = '{{location}}/enriched/messages/dt=${dt}/',
  'parquet.compression' = 'ZSTD'
)
