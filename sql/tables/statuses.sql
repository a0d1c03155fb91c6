-- statuses: WhatsApp delivery statuses (sent, delivered, read, played, failed, ...) of the messages the business
-- sent, one row per (message_id, status); message_status_latest keeps each message's furthest status.
-- Partition projection: Athena computes the dt partitions from the properties below, so no crawler,
-- MSCK REPAIR TABLE or ALTER TABLE ADD PARTITION is ever needed. Filter on dt to read fewer days.
CREATE EXTERNAL TABLE IF NOT EXISTS {{database}}.statuses (
{{column_definitions:statuses}}
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION '{{location}}/enriched/statuses/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '{{projection_start}},NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = '{{location}}/enriched/statuses/dt=${dt}/',
  'parquet.compression' = 'ZSTD'
)
