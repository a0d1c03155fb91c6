-- rejects: raw deliveries the ETL could not turn into rows, with a reason a person can act on.
-- Partition projection: Athena computes the dt partitions from the properties below, so no crawler,
-- MSCK REPAIR TABLE or ALTER TABLE ADD PARTITION is ever needed. Filter on dt to read fewer days.
CREATE EXTERNAL TABLE IF NOT EXISTS {{database}}.rejects (
{{column_definitions:rejects}}
)
PARTITIONED BY (`dt` string)
STORED AS PARQUET
LOCATION '{{location}}/enriched/rejects/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '{{projection_start}},NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'storage.location.template' = '{{location}}/enriched/rejects/dt=${dt}/',
  'parquet.compression' = 'ZSTD'
)
