"""The impression log: what the server ranked, recorded off the request path (docs/OPERATIONS.md).

    config.py    LogConfig: the settings the writer takes (RANKER_LOG_*)
    record.py    Impression (one ranked response, by reference) and LogLayout (a model's columns); sampling
    columns.py   impressions -> one Arrow record batch, a row per returned item (the writer thread's work)
    segments.py  Arrow IPC segments in the spool, compaction to Parquet, recovery after a crash
    sinks.py     where Parquet files become visible: a local directory (rename) or an object store (PUT)
    writer.py    ImpressionLog: the bounded queue and the one writer thread per process
    metrics.py   ranker_log_dropped_total{reason} and friends; one warning per reason per minute
"""
