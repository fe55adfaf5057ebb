DROP TABLE cluster_engines;
DROP TABLE shard_leases;
DROP TABLE cluster_settings;
