-- media: one row per media file (source, media_id) of the messages: where its bytes are in the lake (media_key,
-- null until stored) or why not yet (status: stored, pending, failed, too_large, expired, disabled; error). Written
-- by media capture (every few minutes), not by the ETL. Join messages on (source, message_id).
-- Partition projection: Athena computes the dt partitions from the properties below, so no crawler,
-- MSCK REPAIR TABLE or ALTER TABLE ADD PARTITION is ever needed. Filter on dt to read fewer days.
CREATE EXTERNAL TABLE IF NOT EXISTS {{database}}.media (
{{column_definitions:media}}
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION '{{location}}/enriched/media/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '{{projection_start}},NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = '{{location}}/enriched/media/dt=${dt}/',
  'parquet.compression' = 'ZSTD'
)
